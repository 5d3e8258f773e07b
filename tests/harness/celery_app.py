"""The portal's Celery app with a short broker visibility timeout, for the worker-killed test.

With Redis, a message whose worker died unacknowledged is delivered again once the
visibility timeout passes (an hour in production); the test cannot wait that long.
"""

import os

from portal.celery import app

app.conf.broker_transport_options = {
    **(app.conf.broker_transport_options or {}),
    "visibility_timeout": int(os.environ.get("CC_TEST_VISIBILITY_TIMEOUT", "5")),
    # kombu sweeps for abandoned messages every interval x throttle seconds (100 s by default).
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ["app"]
