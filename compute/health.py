"""Reachability of the configured hypervisors, for /healthz."""

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

CHECK_TIMEOUT_SECONDS = 3.0


def _check_libvirt(uri: str) -> str:
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)  # errors come back as exceptions, not stderr
    conn = libvirt.open(uri)
    try:
        conn.getLibVersion()
    finally:
        conn.close()
    return "ok"


def hypervisor_health() -> dict[str, str]:
    """{endpoint name: "ok" or the reason it is not}, each checked with a time limit."""
    targets = {"default": settings.DEFAULT_HYPERVISOR_URI}
    results = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_check_libvirt, uri) for name, uri in targets.items()}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=CHECK_TIMEOUT_SECONDS)
            except FutureTimeout:
                results[name] = "timeout"
            except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
                results[name] = f"error: {exc}"
    return results
