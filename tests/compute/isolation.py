"""Objects of tenant `cs` for tests/api/test_isolation.py: a user of `me` must get a 404 on each."""

from compute.models import Cluster, Endpoint, Flavor, Host, Image, Site, Snapshot, Volume


def _desktop(scenario):
    from tests.compute.conftest import desktop_of

    return desktop_of(scenario.tenant_a, owner=scenario.student)


def _snapshot(scenario):
    desktop = _desktop(scenario)
    return {"desktop_pk": desktop.pk, "id": Snapshot.objects.create(desktop=desktop, name="s1", state="ready").pk}


def _volume(scenario):
    desktop = _desktop(scenario)
    return {
        "desktop_pk": desktop.pk,
        "id": Volume.objects.create(desktop=desktop, name="d1", size_gib=1, state="attached").pk,
    }


def _data_disk(scenario):
    volume = Volume.objects.create(
        tenant=scenario.tenant_a, owner=scenario.student, name="kept", size_gib=1, state="detached"
    )
    return {"id": volume.pk}


def _image(scenario):
    return {"id": Image.objects.create(name="cs only", visibility="tenant", tenant=scenario.tenant_a).pk}


def _flavor(scenario):
    return {
        "id": Flavor.objects.create(name="cs-only", vcpus=1, memory_mib=128, disk_gib=1, tenant=scenario.tenant_a).pk
    }


def _site(scenario):
    return Site.objects.get_or_create(slug="iso", defaults={"name": "iso"})[0]


def _endpoint(scenario):
    site = _site(scenario)
    cluster, _ = Cluster.objects.get_or_create(site=site, name="iso-general")
    endpoint, _ = Endpoint.objects.get_or_create(
        name="iso", defaults={"site": site, "cluster": cluster, "kind": "libvirt", "url": "test:///default"}
    )
    return {"id": endpoint.pk}


def _host(scenario):
    endpoint = Endpoint.objects.get(pk=_endpoint(scenario)["id"])
    return {"id": Host.objects.get_or_create(endpoint=endpoint, name="iso")[0].pk}


def _desktop_id(scenario):
    return {"id": _desktop(scenario).pk}


MAKERS = {
    "/api/v1/desktops/{id}/": _desktop_id,
    "/api/v1/desktops/{id}/start/": _desktop_id,
    "/api/v1/desktops/{id}/stop/": _desktop_id,
    "/api/v1/desktops/{id}/reboot/": _desktop_id,
    "/api/v1/desktops/{id}/reset/": _desktop_id,
    "/api/v1/desktops/{id}/retry/": _desktop_id,
    "/api/v1/desktops/{id}/clone/": _desktop_id,
    "/api/v1/desktops/{id}/resize/": _desktop_id,
    "/api/v1/desktops/{id}/snapshots/": _desktop_id,
    "/api/v1/desktops/{id}/volumes/": _desktop_id,
    "/api/v1/desktops/{desktop_pk}/snapshots/{id}/": _snapshot,
    "/api/v1/desktops/{desktop_pk}/snapshots/{id}/revert/": _snapshot,
    "/api/v1/desktops/{desktop_pk}/volumes/{id}/": _volume,
    "/api/v1/volumes/{id}/": _data_disk,
    "/api/v1/images/{id}/": _image,
    "/api/v1/flavors/{id}/": _flavor,
    "/api/v1/endpoints/{id}/": _endpoint,
    "/api/v1/sites/{id}/": lambda scenario: {"id": _site(scenario).pk},
    "/api/v1/desktops/{id}/migrate/": _desktop_id,
    "/api/v1/desktops/{id}/migrate/cancel/": _desktop_id,
    "/api/v1/hosts/{id}/maintenance/": _host,
    "/api/v1/hosts/{id}/events/": _host,
}
