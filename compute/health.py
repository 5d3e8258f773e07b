"""Reachability of the hypervisors, for /healthz: every registered endpoint, each with a time limit.

The worker calls this (portal.tasks.hypervisors_probe, every 30 s); /healthz shows the stored results.

Before any endpoint is registered (a fresh install), the one of DEFAULT_HYPERVISOR_URI is
checked under the name "default".
"""

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

CHECK_TIMEOUT_SECONDS = 3.0


def _check(kind: str, url: str, username: str = "", password: str = "", options: dict | None = None) -> str:
    from compute.drivers import open_driver

    driver = open_driver(kind, url, username, password, **(options or {}))
    try:
        driver.check()
    finally:
        driver.close()
    return "ok"


def _targets() -> dict[str, tuple]:
    try:
        from compute.models import Endpoint

        endpoints = list(Endpoint.objects.filter(is_active=True))
    except Exception:  # noqa: BLE001 - no database (or no table yet): fall back to the default URI
        endpoints = []
    if not endpoints:
        return {"default": ("libvirt", settings.DEFAULT_HYPERVISOR_URI, "", "", {})}
    return {e.name: (e.kind, e.url, e.username, e.password, e.driver_options()) for e in endpoints}


def hypervisor_names() -> list[str]:
    return list(_targets())


def hypervisor_health(names: Iterable[str] | None = None) -> dict[str, str]:
    """{endpoint name: "ok" or the reason it is not}, each checked with a time limit (only `names` if given)."""
    targets = _targets()
    if names is not None:
        wanted = set(names)
        targets = {name: target for name, target in targets.items() if name in wanted}
    if not targets:
        return {}
    results = {}
    pool = ThreadPoolExecutor(max_workers=min(8, len(targets)))
    try:
        futures = {name: pool.submit(_check, *target) for name, target in targets.items()}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=CHECK_TIMEOUT_SECONDS)
            except FutureTimeout:
                results[name] = "timeout"
            except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
                results[name] = f"error: {getattr(exc, 'message', exc)}"
    finally:
        # A hung check must not hold /healthz past its time limit.
        pool.shutdown(wait=False, cancel_futures=True)
    return results
