"""Course desktop pools, class schedules, the browser console and golden-image authoring (a sub-app of compute)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClassroomConfig(AppConfig):
    name = "compute.classroom"
    label = "classroom"
    verbose_name = _("课程桌面")

    def ready(self):
        from compute.classroom.services import course_links, fulfil_course_desktops, roster_changed, roster_preview
        from tenants.hooks import register_fulfiller, register_roster_hooks
        from tenants.models import RequestKind

        # An approved course-desktop request becomes a pool (tenants never imports compute); so does a
        # course's GPU simulation environment (a pool with a GPU flavor). Personal GPU requests, which
        # have no course, are left to whoever fulfils them.
        register_fulfiller(RequestKind.COURSE_DESKTOPS, fulfil_course_desktops)
        register_fulfiller(RequestKind.GPU_ENVIRONMENT, fulfil_course_desktops)
        # A course's pool follows its roster: in the transaction that changes it, previewed before.
        register_roster_hooks(changed=roster_changed, preview=roster_preview, links=course_links)
