"""Row locks of the classroom: one named helper per row it locks, the only places `select_for_update` is used.

Each lock lasts until the caller's transaction ends. The pool's lock orders everything done to
its seats (a roster sync, a retry, provisioning); a class session's lock makes each step of the
schedule happen once however many beat ticks overlap.
"""

from compute.classroom.models import AuthoringSession, ClassSession, ConsoleTicket, DesktopPool
from tenants.models import Course


def course_lock(pk: int) -> Course:
    """The course, while its pool is created: a second pool for the same course waits, then is refused."""
    return Course.objects.select_for_update().select_related("tenant", "teacher").get(pk=pk)


def pool_lock(pk: int) -> DesktopPool:
    return DesktopPool.objects.locked(pk)


def class_session_lock(pk: int) -> ClassSession:
    return ClassSession.objects.locked(pk)


def authoring_lock(pk: int) -> AuthoringSession:
    return AuthoringSession.objects.locked(pk)


def ticket_lock(token_hash: str) -> ConsoleTicket | None:
    """The console ticket with this hash (None: no such ticket), so that it is redeemed once."""
    return (
        ConsoleTicket.objects.select_for_update()
        .select_related("desktop__tenant", "desktop__course", "user")
        .filter(token_hash=token_hash)
        .first()
    )
