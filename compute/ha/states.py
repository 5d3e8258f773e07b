"""HA's state machine of a host, as pure functions (no database): what one HA round does with a host.

    ok ──silent ≥ detection──▶ suspect ──claimed by a round──▶ fencing ──BMC says off──▶ fenced
     ▲                           │                                 │
     └──── seen again ───────────┘                                 └──BMC fails──▶ fence_failed ──retry──▶ fencing
    fenced / fence_failed ──admin clears──▶ ok

A host that answers again while suspect was never fenced: it is simply ok. Once fencing has begun it
stays out (whatever it answers) until an admin clears it: the BMC may have cut it mid-write, and its
desktops may already run elsewhere. Only a fenced host's desktops are restarted: never two copies.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta


class Step(enum.StrEnum):
    """What a round does with a host."""

    NOTHING = "nothing"
    SUSPECT = "suspect"  # ok → suspect (silent for the detection time)
    RECOVER = "recover"  # suspect → ok (seen again before fencing began)
    FENCE = "fence"  # suspect, a stale fencing claim, or fence_failed → fencing
    RESTART = "restart"  # fenced: restart its desktops that still are on it


# A fencing claim older than this belongs to a round that died: another round may fence again.
FENCING_CLAIM_SECONDS = 60
# A host whose fencing failed is tried again this often (each attempt is audited).
FENCE_RETRY_SECONDS = 30


def last_seen(heartbeat_at: datetime | None, probed_at: datetime | None) -> datetime | None:
    """The later of the agent's heartbeat and the portal's last successful libvirt probe."""
    seen = [t for t in (heartbeat_at, probed_at) if t is not None]
    return max(seen) if seen else None


def silent(seen: datetime | None, *, now: datetime, detection: int) -> bool:
    """Missing both signals for ``detection`` seconds. A host never seen is not judged (nothing to lose)."""
    return seen is not None and now - seen >= timedelta(seconds=detection)


def step(state: str, *, is_silent: bool, since: datetime | None, now: datetime) -> Step:
    """The next step for a host in ``state`` (a ``HaState`` value), ``since`` it entered that state."""
    age = (now - since).total_seconds() if since else float("inf")
    if state == "ok":
        return Step.SUSPECT if is_silent else Step.NOTHING
    if state == "suspect":
        return Step.FENCE if is_silent else Step.RECOVER
    if state == "fencing":
        return Step.FENCE if age >= FENCING_CLAIM_SECONDS else Step.NOTHING
    if state == "fence_failed":
        return Step.FENCE if age >= FENCE_RETRY_SECONDS else Step.NOTHING
    if state == "fenced":
        return Step.RESTART
    return Step.NOTHING


def may_clear(state: str) -> bool:
    """An admin may put a host back into service once HA has done with it (fenced, or fencing failed)."""
    return state in ("fenced", "fence_failed", "suspect")
