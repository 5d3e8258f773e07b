"""The compute pages: lists with search and pagination, live state partials, actions, admin pages."""

import pytest
from django.test import Client

from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Image, ImageVersion
from tests.compute.conftest import desktop_of


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    # Platform admins and auditors must use a second factor (audit's middleware, tested there);
    # these tests are about the compute pages behind it.
    settings.SECOND_FACTOR_REQUIRED = False


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_desktop_list_shows_only_what_the_user_may_see(scenario, compute_env):
    mine = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    other = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student2)

    page = _client(scenario.student).get("/compute/").content.decode()

    assert mine.name in page
    assert other.name not in page


def test_an_empty_desktop_list_says_what_to_do_next(scenario, compute_env):
    page = _client(scenario.student).get("/compute/").content.decode()

    assert 'data-testid="desktop-empty"' in page
    assert "/compute/desktops/new/" in page


def test_the_desktop_list_searches_and_paginates(scenario, compute_env):
    for _ in range(25):
        desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    special = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    Desktop.objects.filter(pk=special.pk).update(name="unique-lab-desk")
    client = _client(scenario.student)

    first = client.get("/compute/").content.decode()
    assert first.count('id="desktop-row-') == 20
    assert "第 1 / 2 页" in first
    assert client.get("/compute/?page=2").content.decode().count('id="desktop-row-') == 6
    found = client.get("/compute/?q=unique-lab").content.decode()
    assert found.count('id="desktop-row-') == 1


def test_a_transient_row_polls_itself_and_a_settled_one_does_not(scenario, compute_env):
    busy = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.PROVISIONING)
    done = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    client = _client(scenario.student)

    busy_row = client.get(f"/compute/desktops/{busy.pk}/row/").content.decode()
    done_row = client.get(f"/compute/desktops/{done.pk}/row/").content.decode()

    assert 'hx-trigger="every 3s"' in busy_row
    assert "hx-trigger" not in done_row
    assert client.get(f"/compute/desktops/{busy.pk}/state/").status_code == 200


def test_another_tenants_desktop_page_is_a_404(scenario, compute_env):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    client = _client(scenario.stranger)

    assert client.get(f"/compute/desktops/{desktop.pk}/").status_code == 404
    assert client.get(f"/compute/desktops/{desktop.pk}/row/").status_code == 404
    assert client.post(f"/compute/desktops/{desktop.pk}/stop/").status_code == 404


def test_the_detail_page_offers_actions_and_asks_before_deleting(scenario, compute_env):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    page = _client(scenario.student).get(f"/compute/desktops/{desktop.pk}/").content.decode()

    assert 'data-testid="action-stop"' in page
    assert 'id="confirm-delete"' in page  # the delete button opens a confirmation first
    assert 'data-testid="confirm-delete"' in page
    assert "快照" in page and "数据盘" in page


def test_an_auditor_sees_the_detail_page_without_actions(scenario, compute_env):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    page = _client(scenario.auditor).get(f"/compute/desktops/{desktop.pk}/").content.decode()

    assert desktop.name in page
    assert 'data-testid="action-stop"' not in page


def test_an_illegal_action_from_the_page_is_a_message_not_an_error(scenario, compute_env):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.STOPPED)

    response = _client(scenario.student).post(f"/compute/desktops/{desktop.pk}/stop/", follow=True)

    assert response.status_code == 200
    assert "不能关机" in response.content.decode()


def test_a_student_creates_a_desktop_from_the_page(scenario, compute_env, eager, django_capture_on_commit_callbacks):
    client = _client(scenario.student)
    assert client.get("/compute/desktops/new/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/compute/desktops/new/",
            {"name": "from-page", "image_version": compute_env.version.pk, "flavor": compute_env.flavor.pk},
        )

    desktop = Desktop.objects.get(name="from-page")
    assert response.status_code == 302
    assert response["Location"] == f"/compute/desktops/{desktop.pk}/"
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING


def test_admin_pages_are_for_the_system_admin_only(scenario, compute_env):
    inventory = [f"/compute/admin/inventory/{kind}/" for kind in ("sites", "clusters", "pools", "gpu-profiles")]
    for url in ("/compute/admin/endpoints/", "/compute/admin/images/", "/compute/admin/flavors/", *inventory):
        assert _client(scenario.tenant_admin).get(url).status_code == 404
        assert _client(scenario.sysadmin).get(url).status_code == 200


def test_registering_an_unreachable_endpoint_shows_a_clear_error(scenario):
    response = _client(scenario.sysadmin).post(
        "/compute/admin/endpoints/",
        {
            "name": "dead",
            "kind": "libvirt",
            "url": "qemu+tcp://127.0.0.1:1/system",
            "site": "main",
            "domain_type": "qemu",
            "max_concurrency": 4,
        },
    )

    assert response.status_code == 200
    assert 'data-testid="form-error"' in response.content.decode()
    assert "无法连接到虚拟化平台" in response.content.decode()
    assert not Endpoint.objects.filter(name="dead").exists()


def test_registering_a_reachable_endpoint_from_the_page(scenario):
    response = _client(scenario.sysadmin).post(
        "/compute/admin/endpoints/",
        {
            "name": "lab",
            "kind": "libvirt",
            "url": "test:///default",
            "password": "never-shown",
            "site": "main",
            "domain_type": "qemu",
            "max_concurrency": 4,
            "storage_pool": "default-pool",
        },
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert Endpoint.objects.filter(name="lab").exists()
    assert "never-shown" not in page


@pytest.mark.libvirt
@pytest.mark.django_db
def test_an_image_is_uploaded_in_chunks_checked_by_qemu_img_and_queued(scenario, tmp_path, settings, qemu_pool):
    import subprocess

    from compute import services

    settings.MEDIA_ROOT = str(tmp_path)
    endpoint = services.endpoint_register(
        actor=scenario.sysadmin, name="qemu-up", kind="libvirt", url=qemu_pool["uri"], storage_pool=qemu_pool["pool"]
    )
    image = Image.objects.create(name="Ubuntu")
    source = tmp_path / "ubuntu.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(source), "16M"], check=True)
    data = source.read_bytes()
    half = len(data) // 2
    client = _client(scenario.sysadmin)
    upload = "ab" * 16

    def send(offset, chunk):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return client.post(
            f"/compute/admin/images/{image.pk}/upload/",
            {
                "upload_id": upload,
                "offset": offset,
                "total": len(data),
                "filename": "ubuntu.qcow2",
                "endpoint": endpoint.pk,
                "chunk": SimpleUploadedFile("ubuntu.qcow2", chunk),
            },
        )

    assert send(0, data[:half]).json() == {"received": half}
    assert send(0, data[half:]).status_code == 409  # a wrong offset is refused, not appended
    done = send(half, data[half:])

    assert done.status_code == 200, done.content
    version = ImageVersion.objects.get(image=image)
    assert version.format == "qcow2" and version.size_bytes == 16 * 1024 * 1024
    assert version.status == ImageVersion.Status.PENDING  # the import task takes it from here


@pytest.mark.django_db
def test_a_file_that_is_not_a_disk_image_is_refused(scenario, tmp_path, settings, compute_env):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = str(tmp_path)
    image = Image.objects.create(name="Bad")
    response = _client(scenario.sysadmin).post(
        f"/compute/admin/images/{image.pk}/upload/",
        {
            "upload_id": "cd" * 16,
            "offset": 0,
            "total": 10,
            "filename": "x.qcow2",
            "endpoint": compute_env.endpoint.pk,
            "chunk": SimpleUploadedFile("x.qcow2", b"not an img"),
        },
    )

    assert response.status_code == 400
    assert response.json()["code"] in (ComputeError.IMAGE_TOO_SMALL, ComputeError.IMAGE_BAD_FORMAT)
    assert not ImageVersion.objects.filter(image=image).exists()


def test_the_desktop_list_page_costs_the_same_queries_for_3_or_30_rows(scenario, compute_env):
    from tests.querycount import assert_constant_queries

    def grow(n):
        for _ in range(n):
            desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    client = _client(scenario.tenant_admin)
    client.get("/compute/")  # the session's first request does its one-time work

    assert_constant_queries(lambda: client.get("/compute/"), grow)


def test_the_desktop_detail_page_lists_its_nics(scenario, compute_env):
    from network import services as network_services

    network = network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab-net", cidr="10.231.9.0/24"
    )
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    bare = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    nic = network_services.address_allocate(tenant=scenario.tenant_a, desktop_id=desktop.pk, network=network)
    client = _client(scenario.student)

    page = client.get(f"/compute/desktops/{desktop.pk}/").content.decode()
    assert 'data-testid="desktop-nics"' in page
    assert nic.mac in page and nic.ip in page and "lab-net" in page
    assert 'data-testid="desktop-nics"' not in client.get(f"/compute/desktops/{bare.pk}/").content.decode()


def test_the_desktop_page_offers_the_tenants_detached_disks_to_attach_or_delete(scenario, compute_env):
    from compute.models import Volume

    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.STOPPED)
    kept = Volume.objects.create(
        tenant=scenario.tenant_a,
        owner=scenario.student,
        endpoint=compute_env.endpoint,
        name="thesis-data",
        size_gib=2,
        pool="default-pool",
        volume_name="cc-vol-x.qcow2",
        state=Volume.State.DETACHED,
    )
    someone_elses = Volume.objects.create(
        tenant=scenario.tenant_a,
        owner=scenario.student2,
        endpoint=compute_env.endpoint,
        name="not-mine",
        size_gib=1,
        state=Volume.State.DETACHED,
    )
    client = _client(scenario.student)

    page = client.get(f"/compute/desktops/{desktop.pk}/").content.decode()
    assert 'data-testid="available-volumes"' in page and "thesis-data" in page
    assert "not-mine" not in page
    assert "data-confirm=" in page.split('data-testid="available-volumes"')[1]

    assert client.post(f"/compute/desktops/{desktop.pk}/volumes/{someone_elses.pk}/delete/").status_code == 404
    response = client.post(f"/compute/desktops/{desktop.pk}/volumes/{kept.pk}/delete/")
    assert response.status_code == 302
    kept.refresh_from_db()
    someone_elses.refresh_from_db()
    assert kept.state == Volume.State.DELETING
    assert someone_elses.state == Volume.State.DETACHED


def test_the_system_admin_creates_and_edits_clusters_pools_and_gpu_profiles_with_audit(scenario, compute_env):
    from audit.models import AuditEvent
    from compute.models import Cluster, GpuProfile, Site, StoragePool

    client = _client(scenario.sysadmin)
    site = Site.objects.get()

    response = client.post(
        "/compute/admin/inventory/clusters/",
        {
            "site": site.pk,
            "name": "gpu-a",
            "kind": "gpu",
            "policy": "pack",
            "cpu_overcommit": "4",
            "memory_overcommit": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(name="gpu-a")
    assert (cluster.kind, cluster.policy) == ("gpu", "pack")
    response = client.post(
        f"/compute/admin/inventory/clusters/{cluster.pk}/",
        {
            "site": site.pk,
            "name": "gpu-a",
            "kind": "gpu",
            "policy": "spread",
            "cpu_overcommit": "4",
            "memory_overcommit": "1",
        },
    )
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.policy == "spread"

    # A distributed pool keeps 2-6 replicas: 7 (or 1) is a form error and nothing is saved.
    for replicas in (7, 1):
        page = client.post(
            "/compute/admin/inventory/pools/",
            {"endpoint": compute_env.endpoint.pk, "name": "ceph", "kind": "distributed", "replicas": replicas},
        )
        body = page.content.decode()
        assert page.status_code == 200 and ("invalid-feedback" in body or 'data-testid="form-error"' in body)
    assert not StoragePool.objects.filter(name="ceph").exists()
    response = client.post(
        "/compute/admin/inventory/pools/",
        {"endpoint": compute_env.endpoint.pk, "name": "ceph", "kind": "distributed", "replicas": 3, "is_default": "on"},
    )
    assert response.status_code == 302
    assert StoragePool.objects.get(name="ceph").replicas == 3
    # The new default replaces the old one: one default pool per endpoint.
    assert list(
        StoragePool.objects.filter(endpoint=compute_env.endpoint, is_default=True).values_list("name", flat=True)
    ) == ["ceph"]

    response = client.post(
        "/compute/admin/inventory/gpu-profiles/",
        {"name": "t4-2q", "mode": "vgpu", "vgpu_type": "grid_t4-2q", "gpus": 1},
    )
    assert response.status_code == 302
    assert GpuProfile.objects.get(name="t4-2q").vgpu_type == "grid_t4-2q"
    listing = client.get("/compute/admin/inventory/gpu-profiles/").content.decode()
    assert "t4-2q" in listing and 'data-testid="inventory-table"' in listing

    kinds = [
        e.detail.get("kind")
        for e in AuditEvent.objects.filter(actor_username=scenario.sysadmin.username, action="inventory.changed")
    ]
    assert {"cluster", "storagepool", "gpuprofile"} <= set(kinds)
    assert kinds.count("cluster") == 2
    assert client.get("/compute/admin/inventory/nope/").status_code == 404


def test_a_new_libvirt_pool_with_a_directory_is_made_on_the_hypervisor(scenario, compute_env, tmp_path):
    from compute.hypervisor import driver_for
    from compute.models import StoragePool

    response = _client(scenario.sysadmin).post(
        "/compute/admin/inventory/pools/",
        {"endpoint": compute_env.endpoint.pk, "name": "extra", "kind": "local", "replicas": 1, "path": str(tmp_path)},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert StoragePool.objects.filter(name="extra").exists()
    assert driver_for(compute_env.endpoint).volume_create("extra", "probe.qcow2", 1).pool == "extra"


def test_a_flavor_with_a_gpu_profile_is_created_from_the_page(scenario, compute_env):
    from compute.models import GpuProfile

    profile = GpuProfile.objects.create(name="a100", mode="passthrough")
    response = _client(scenario.sysadmin).post(
        "/compute/admin/flavors/",
        {"name": "gpu-large", "vcpus": 8, "memory_mib": 16384, "disk_gib": 40, "gpu_profile": profile.pk},
    )
    assert response.status_code == 302
    from compute.models import Flavor

    assert Flavor.objects.get(name="gpu-large").gpu_profile == profile


def test_the_system_admin_edits_a_flavor_and_others_cannot(scenario):
    from audit.models import AuditEvent
    from compute import services

    flavor = services.flavor_create(actor=scenario.sysadmin, name="tiny-x", vcpus=1, memory_mib=256, disk_gib=10)
    client = _client(scenario.sysadmin)

    assert f'href="/compute/admin/flavors/{flavor.pk}/"' in client.get("/compute/admin/flavors/").content.decode()
    page = client.get(f"/compute/admin/flavors/{flavor.pk}/").content.decode()
    assert 'value="256"' in page
    response = client.post(
        f"/compute/admin/flavors/{flavor.pk}/",
        {"name": "tiny-x", "vcpus": 2, "memory_mib": 512, "disk_gib": 10, "is_active": "on"},
    )

    assert response.status_code == 302
    flavor.refresh_from_db()
    assert (flavor.vcpus, flavor.memory_mib, flavor.is_active) == (2, 512, True)
    assert AuditEvent.objects.filter(action="flavor.changed", object_id=str(flavor.pk)).count() == 2
    assert _client(scenario.tenant_admin).get(f"/compute/admin/flavors/{flavor.pk}/").status_code in (403, 404)
