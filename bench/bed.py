"""The multi-host testbed for the benches that run on it (bench/testbed_provision.py, bench/console.py).

``testbed()`` reuses the testbed named by the TESTBED_* environment (scripts/testbed.sh) when it is up,
and otherwise brings it up and takes it down again when the bench ends; it says which. Needs root, as the
testbed does. The bench's own processes talk to the hosts' libvirtds over qemu+tcp from this machine.
"""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.harness.testbed import SCRIPT, Testbed, _env, bed_config, bring_down, bring_up, describe  # noqa: E402


def _is_up(config: dict[str, str]) -> bool:
    status = subprocess.run([str(SCRIPT), "status"], env=_env(config), capture_output=True, text=True)
    return status.returncode == 0


@contextmanager
def testbed() -> Iterator[Testbed]:
    config = bed_config()
    reused = _is_up(config)
    bed = describe(config) if reused else bring_up(config, owner="bench")
    print(f"testbed {config.get('TESTBED_PREFIX', 'cc')}: {'reused (it was up)' if reused else 'brought up'}")
    try:
        yield bed
    finally:
        if not reused:
            bring_down(config)
            print("testbed taken down (the bench brought it up)")


def add_hosts(bed: Testbed, pool: str) -> dict[str, object]:
    """Every testbed host as a compute node (``host_add``; cluster ``<site>-general``, TCG), its desktop pool
    ``pool`` on the testbed's shared storage; returns the Host rows by name."""
    from compute import services
    from compute.models import Host

    for host in bed:
        services.host_add(
            actor=None,
            name=host.name,
            uri=host.uri,
            site=host.site,
            cluster=f"{host.site}-general",
            domain_type="qemu",
            storage_pool=pool,
            shared_storage=True,
        )
    return {h.name: h for h in Host.objects.select_related("endpoint")}
