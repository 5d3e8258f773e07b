"""Writes of the classroom, one module per subject; the public names are re-exported here so that
callers import ``compute.classroom.services`` and need not know which module holds what.

- ``pools``: pools (creation, the wizard's request, settings)
- ``seats``: seats one by one (provisioning, retries, hand-over, retirement; a spare seat given or taken back)
- ``roster``: the pool following its course's roster, and the preview of that
- ``power``: power and reset of a pool's desktops (a teacher's and the schedule's)
- ``scheduler``: the class schedule's beat tick and the classes teachers skip
- ``schedule``: the schedule's time arithmetic and reads (no writes; the selectors use it)
- ``console``: console tickets for the browser console's proxy
- ``authoring``: golden-image authoring and the retirement of unused course versions

Every service is keyword-only, runs in one transaction, records its audit event there and starts
hypervisor work after commit (``common.tasks.enqueue``, task names in
``compute.classroom.task_names``). ``actor=None`` means the platform itself (the schedule, an
approved request being fulfilled).
"""

from compute.classroom.services.access import can_manage_pool
from compute.classroom.services.authoring import (
    authoring_publish,
    authoring_publish_finish,
    authoring_start,
    version_in_use,
    version_volume_deleted,
    versions_retire_unused,
)
from compute.classroom.services.console import (
    CONSOLE_SEEN_SECONDS,
    TICKET_SECONDS,
    ConsoleGrant,
    TicketRefused,
    can_open_console,
    connected_desktop_ids,
    console_close,
    console_seen,
    console_ticket_issue,
    console_ticket_redeem,
    console_ws_path,
)
from compute.classroom.services.fulfilment import (
    fulfil_course_desktops,
    plan_course_desktops,
    plan_gpu_environment,
    pool_fulfil_again,
    pool_request_progress,
    seat_desktop_observer,
)
from compute.classroom.services.pools import (
    course_links,
    course_request_submit,
    pool_create,
    pool_create_from_request,
    pool_settings_update,
)
from compute.classroom.services.power import pool_power, pool_reset, seat_power, seat_reset
from compute.classroom.services.roster import SyncResult, pool_sync_roster, roster_changed, roster_preview
from compute.classroom.services.schedule import (
    DEFAULT_SHUTDOWN_DEADLINE,
    MAX_DEADLINE_MINUTES,
    MAX_SCHEDULE_MINUTES,
    class_in_progress,
    classes_between,
    next_class,
    schedule_minutes,
    shutdown_deadline,
    shutdown_notice,
)
from compute.classroom.services.scheduler import schedule_exception_add, schedule_exception_remove, schedule_tick
from compute.classroom.services.seats import (
    pool_retry_failed,
    pool_seats_provision,
    roster_student,
    seat_amounts,
    seat_assign,
    seat_retry,
    seat_take_back,
    seats_free_students,
)

__all__ = [
    "CONSOLE_SEEN_SECONDS",
    "DEFAULT_SHUTDOWN_DEADLINE",
    "MAX_DEADLINE_MINUTES",
    "MAX_SCHEDULE_MINUTES",
    "TICKET_SECONDS",
    "ConsoleGrant",
    "SyncResult",
    "TicketRefused",
    "authoring_publish",
    "authoring_publish_finish",
    "authoring_start",
    "can_manage_pool",
    "can_open_console",
    "class_in_progress",
    "classes_between",
    "connected_desktop_ids",
    "console_close",
    "console_seen",
    "console_ticket_issue",
    "console_ticket_redeem",
    "console_ws_path",
    "course_links",
    "course_request_submit",
    "fulfil_course_desktops",
    "next_class",
    "plan_course_desktops",
    "plan_gpu_environment",
    "pool_create",
    "pool_create_from_request",
    "pool_fulfil_again",
    "pool_power",
    "pool_request_progress",
    "pool_reset",
    "pool_retry_failed",
    "pool_seats_provision",
    "pool_settings_update",
    "pool_sync_roster",
    "roster_changed",
    "roster_preview",
    "roster_student",
    "schedule_exception_add",
    "schedule_exception_remove",
    "schedule_minutes",
    "schedule_tick",
    "seat_amounts",
    "seat_assign",
    "seat_desktop_observer",
    "seat_power",
    "seat_reset",
    "seat_retry",
    "seat_take_back",
    "seats_free_students",
    "shutdown_deadline",
    "shutdown_notice",
    "version_in_use",
    "version_volume_deleted",
    "versions_retire_unused",
]
