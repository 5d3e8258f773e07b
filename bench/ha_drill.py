"""HA drill: kill one testbed host; time to fenced, and to every HA desktop running elsewhere as itself.

Usage: .venv/bin/python bench/ha_drill.py [--desktops 3] [--json]   (root: it makes a testbed of its own)

A three-host testbed of its own (prefix ``t4hb``, subnets 10.213.66/67: beside the session's and the
tests'), each host with an IPMI BMC simulator (tests/harness/bmc.py). The portal runs on the bench's own
database (bench/env.py): hosts added with shared storage and their BMCs, DESKTOPS desktops with a tenant
network placed on host b2. Then b2 loses every process (libvirtd, QEMU, dnsmasq); HA rounds run every
HA_TICK_SECONDS (3 s, as beat runs ``compute.tasks.ha.ha_tick``) with the default detection time (15 s).
Printed: seconds from the failure to fenced, and to every desktop running on another host with the same
MAC and the same IP in that host's DHCP. Targets (issue 17): ≤ 30 s and ≤ 60 s.
``drill()`` is what bench/ha.py calls for its HA part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

BED = {
    "TESTBED_PREFIX": "t4hb",
    "TESTBED_HOSTS": "b1:east b2:east b3:east",
    "TESTBED_MGMT_NET": "10.213.66",
    "TESTBED_DATA_NET": "10.213.67",
}
TARGET_FENCED, TARGET_ALL = 30.0, 60.0


def _portal(bed, bmcs: dict, desktops: int) -> list[int]:
    """Hosts, BMCs, image, network and the desktops on b2, through the portal's services (tasks in-process)."""
    from compute import services
    from compute.ha import services as ha_services
    from compute.models import Desktop, Host
    from network import services as network_services
    from portal.celery import app
    from tenants.models import Membership, Tenant, User
    from tests.testbed.hosts import add_host

    app.conf.task_always_eager = True
    pool, golden = "habench", "golden-habench.qcow2"
    area = bed.shared_area(pool)  # the testbed is the drill's own and goes down after, with the directory
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(area.dir / golden), "64M"], check=True)
    for host in bed:
        conn = host.connect()
        conn.storagePoolCreateXML(area.pool_xml(pool), 0)
        conn.close()
        add_host(host, shared_storage_pool=pool)
        bmc = bmcs[host.name]
        ha_services.host_bmc_set(
            actor=None,
            host=Host.objects.get(name=host.name),
            address=bmc.address,
            port=bmc.port,
            username=bmc.username,
            password=bmc.password,
        )
    tenant = Tenant.objects.create(slug="bench", name_zh="基准测试", path="/bench/")
    user = User.objects.create(username="bench-teacher")
    Membership.objects.create(user=user, tenant=tenant, role="tenant_admin")
    image = services.image_create(actor=None, name="bench")
    version = services.image_version_register(
        actor=None,
        image=image,
        endpoint=Host.objects.get(name="b1").endpoint,
        pool=pool,
        volume=golden,
        size_bytes=64 * 1024**2,
    )
    flavor = services.flavor_create(actor=None, name="bench", vcpus=1, memory_mib=64, disk_gib=1)
    network_services.network_create(actor=None, tenant=tenant, name="lab", cidr="10.231.78.0/24")
    b2 = Host.objects.get(name="b2").endpoint
    ids = [
        services.desktop_create(
            actor=user, tenant=tenant, image_version=version, flavor=flavor, owner=user, endpoint=b2, name=f"ha-{i}"
        ).pk
        for i in range(desktops)
    ]
    bad = Desktop.objects.filter(pk__in=ids).exclude(state=Desktop.State.RUNNING).values_list("name", "error_reason")
    if bad:
        raise SystemExit(f"desktops did not start: {list(bad)}")
    return ids


def _as_themselves(bed, ids: list[int], before: dict) -> bool:
    """Every desktop off b2, running on its new host's libvirtd with its MAC, its IP in that host's DHCP."""
    from compute.models import Desktop

    for desktop in Desktop.objects.filter(pk__in=ids).select_related("host"):
        if desktop.host is None or desktop.host.name == "b2" or (desktop.mac, desktop.guest_ip) != before[desktop.pk]:
            return False
        conn = bed[desktop.host.name].connect()
        try:
            dom = conn.lookupByName(desktop.vm_name)
            nets = [n.XMLDesc(0) for n in conn.listAllNetworks(0)]
            if not dom.isActive() or f"<mac address='{desktop.mac}'/>" not in dom.XMLDesc(0):
                return False
            if not any(f"mac='{desktop.mac}'" in x and f"ip='{desktop.guest_ip}'" in x for x in nets):
                return False
        finally:
            conn.close()
    return True


def _measure(bed, ids: list[int], tick: float, timeout: float = 120.0) -> dict:
    """Kill b2, run rounds every ``tick`` s as beat would; fenced is read from the incident (the moment the BMC
    said off), "all" when every desktop was seen running elsewhere as itself."""
    from django.utils import timezone

    from compute.ha.round import ha_round
    from compute.models import Desktop, HaIncident

    rows = Desktop.objects.filter(pk__in=ids).values_list("pk", "mac", "guest_ip")
    before = {pk: (mac, ip) for pk, mac, ip in rows}
    ha_round()  # beat's rounds run all along: every host was just seen
    failed_at, failed = timezone.now(), time.monotonic()
    bed["b2"].lose()
    everything = None
    while time.monotonic() - failed < timeout and everything is None:
        started = time.monotonic()
        ha_round()
        if _as_themselves(bed, ids, before):
            everything = time.monotonic() - failed
        time.sleep(max(0.0, tick - (time.monotonic() - started)))
    incident = HaIncident.objects.filter(host__name="b2").order_by("-pk").first()
    fenced = (incident.fenced_at - failed_at).total_seconds() if incident and incident.fenced_at else None
    suspect = (incident.suspect_at - failed_at).total_seconds() if incident else None
    return {"desktops": len(ids), "suspect_s": suspect, "fenced_s": fenced, "all_running_elsewhere_s": everything}


def drill(desktops: int = 3) -> dict:
    """The HA drill on a testbed of its own, on the bench's own database; the testbed is taken down after."""
    common.django_on("ha_drill")
    from django.conf import settings

    from compute.hypervisor import drivers_close_all
    from tests.harness.bmc import bmc_for
    from tests.harness.testbed import bed_config, bring_down, bring_up

    config = bed_config(**BED)
    bring_down(config)
    bed = bring_up(config)
    try:
        with ExitStack() as stack:
            bmcs = {host.name: stack.enter_context(bmc_for(host)) for host in bed}
            ids = _portal(bed, bmcs, desktops)
            result = _measure(bed, ids, settings.HA_TICK_SECONDS)
    finally:
        drivers_close_all()
        with contextlib.suppress(Exception):
            bring_down(config)
    result["detection_s"] = settings.HA_DETECTION_SECONDS
    result["ok"] = bool(
        result["fenced_s"] is not None
        and result["fenced_s"] <= TARGET_FENCED
        and result["all_running_elsewhere_s"] is not None
        and result["all_running_elsewhere_s"] <= TARGET_ALL
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--desktops", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = drill(args.desktops)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"HA drill: {result['desktops']} desktops on the lost host, detection {result['detection_s']} s")
        print(f"  failure → suspect: {result['suspect_s']} s")
        print(f"  failure → fenced:  {result['fenced_s']} s (target ≤ {TARGET_FENCED:.0f} s)")
        print(
            f"  failure → all running elsewhere (same IP/MAC): {result['all_running_elsewhere_s']} s"
            f" (target ≤ {TARGET_ALL:.0f} s)"
        )
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
