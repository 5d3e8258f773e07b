"""Waiting for what a real worker does: a condition to hold, a desktop to reach a state."""

import time


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def wait_state(desktop, *states, timeout: float = 60.0):
    def reached():
        desktop.refresh_from_db()
        return desktop.state in states

    try:
        wait_for(reached, timeout=timeout, what=f"desktop {desktop.pk} in {states}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is {desktop.state} ({desktop.last_error!r})") from None
    return desktop
