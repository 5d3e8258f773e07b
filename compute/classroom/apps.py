"""Course desktop pools, class schedules, the browser console and golden-image authoring (a sub-app of compute)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClassroomConfig(AppConfig):
    name = "compute.classroom"
    label = "classroom"
    verbose_name = _("课程桌面")

    def ready(self):
        from compute.classroom import services
        from compute.hooks import register_desktop_observer
        from tenants.hooks import register_fulfiller, register_planner, register_roster_hooks
        from tenants.models import RequestKind

        # An approved course-desktop request becomes a pool (tenants never imports compute); so does a
        # course's GPU simulation environment with seats (a pool with a GPU flavor). A GPU environment
        # without seats is one GPU desktop of the requester's, which the same fulfiller hands to compute.
        register_planner(RequestKind.COURSE_DESKTOPS, services.plan_course_desktops)
        register_planner(RequestKind.GPU_ENVIRONMENT, services.plan_gpu_environment)
        register_fulfiller(RequestKind.COURSE_DESKTOPS, services.fulfil_course_desktops)
        register_fulfiller(RequestKind.GPU_ENVIRONMENT, services.fulfil_course_desktops)
        # The pool's request is delivered when its seats' desktops run: it hears of each one.
        register_desktop_observer(services.seat_desktop_observer)
        # A course's pool follows its roster: in the transaction that changes it, previewed before.
        register_roster_hooks(
            changed=services.roster_changed, preview=services.roster_preview, links=services.course_links
        )
