"""compute.demo.seed: the endpoint of DEFAULT_HYPERVISOR_URI, a golden image and flavors, idempotently."""

from compute import demo
from compute.models import Endpoint, Flavor, ImageVersion


def test_the_demo_registers_the_default_hypervisor_once(db, settings):
    settings.DEFAULT_HYPERVISOR_URI = "test:///default"

    first = demo.seed()
    second = demo.seed()

    endpoint = Endpoint.objects.get()
    assert endpoint.url == "test:///default" and endpoint.status == "ok"
    assert endpoint.domain_type == "qemu"
    assert ImageVersion.objects.get().status == "ready"
    assert Flavor.objects.count() == len(demo.FLAVORS)
    assert "created" in first["endpoint"] and "exists" in second["endpoint"]


def test_an_unreachable_default_hypervisor_is_skipped_and_said_so(db, settings):
    settings.DEFAULT_HYPERVISOR_URI = "qemu+tcp://127.0.0.1:1/system"

    summary = demo.seed()

    assert summary["endpoint"].startswith("skipped")
    assert not Endpoint.objects.exists()
    assert Flavor.objects.count() == len(demo.FLAVORS)
