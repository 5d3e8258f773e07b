"""Error codes of the classroom's refusals: the ``code`` of the API's error body, asserted by tests.

A refusal that is not the classroom's own (an unknown desktop) uses ``common.errors.ErrorCode``.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    # Pools and seats
    POOL_FORBIDDEN = "pool_forbidden"
    POOL_PERSISTENCE_INVALID = "pool_persistence_invalid"
    POOL_LEAVER_DISKS_INVALID = "pool_leaver_disks_invalid"
    POOL_EXISTS = "pool_exists"
    POOL_RETIRED = "pool_retired"
    POOL_ACTION_INVALID = "pool_action_invalid"
    POOL_IN_CLASS = "pool_in_class"
    IMAGE_NOT_READY = "image_not_ready"
    ROSTER_EMPTY = "roster_empty"
    REQUEST_PAYLOAD_INVALID = "request_payload_invalid"
    SEAT_RETIRED = "seat_retired"
    SEAT_BUSY = "seat_busy"
    SEAT_NOT_SPARE = "seat_not_spare"
    SEAT_SPARE = "seat_spare"
    STUDENT_NOT_ON_ROSTER = "student_not_on_roster"
    STUDENT_SEATED = "student_seated"
    # The schedule
    POOL_SCHEDULE_INVALID = "pool_schedule_invalid"
    POOL_DEADLINE_INVALID = "pool_deadline_invalid"
    CLASS_TIME_NOT_FOUND = "class_time_not_found"
    CLASS_NOT_ON_DATE = "class_not_on_date"
    # The console
    DESKTOP_STOPPED = "desktop_stopped"
    DESKTOP_NOT_RUNNING = "desktop_not_running"
    CONSOLE_UNSUPPORTED = "console_unsupported"
    CONSOLE_UNAVAILABLE = "console_unavailable"
    # Image authoring
    AUTHORING_NOT_ACTIVE = "authoring_not_active"
    AUTHORING_DESKTOP_RUNNING = "authoring_desktop_running"
    AUTHORING_UNSUPPORTED = "authoring_unsupported"
