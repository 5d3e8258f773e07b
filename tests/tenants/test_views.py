"""The tenants pages and the request wizard, through Django's test client."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from network.models import Network
from tenants.models import ApprovalRequest, Quota
from tenants.quotas import quota_set
from tests.compute.conftest import make_env

PAGES = ["/tenants/tree/", "/tenants/courses/", "/tenants/quotas/", "/tenants/requests/", "/request/new/"]


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    # The audit app's second-factor gate (finance, auditors, platform admins) is tested there;
    # these tests are about the pages behind it.
    settings.SECOND_FACTOR_REQUIRED = False


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["tenant_admin", "teacher", "finance", "auditor", "sysadmin"])
@pytest.mark.parametrize("url", PAGES)
def test_pages_render_for_each_role(scenario, course, role, url):
    response = client_for(getattr(scenario, role)).get(url)
    assert response.status_code == 200, (role, url)


def test_another_tenants_pages_are_404(scenario, course):
    stranger = client_for(scenario.stranger_admin)
    assert stranger.get(f"/tenants/courses/{course.pk}/").status_code == 404
    assert stranger.get("/tenants/t/cs/members/").status_code == 404
    request = ApprovalRequest.objects.create(
        tenant=scenario.tenant_a, requester=scenario.teacher, kind="personal_desktop", title="x", vcpu=1
    )
    assert stranger.get(f"/tenants/requests/{request.pk}/").status_code == 404
    assert stranger.post(f"/tenants/requests/{request.pk}/approve/").status_code == 404


def test_roster_page_lists_every_bad_line(scenario, course):
    upload = SimpleUploadedFile("r.csv", "20269001,甲\n,乙\n".encode(), content_type="text/csv")
    response = client_for(scenario.teacher).post(f"/tenants/courses/{course.pk}/", {"action": "import", "file": upload})
    assert response.status_code == 200
    assert "第 2 行" in response.content.decode()
    assert course.roster.count() == 2


def test_quota_page_shows_used_reserved_and_limit(scenario, course):
    quota_set(actor=None, tenant=scenario.tenant_a, limits={"desktops": 10})
    Quota.objects.filter(tenant=scenario.tenant_a, scope="tenant").update(used_desktops=6, reserved_desktops=2)
    page = client_for(scenario.tenant_admin).get("/tenants/quotas/").content.decode()
    assert "已用 6 · 预留 2 · 上限 10（可用 2）" in page
    assert "超过 80%" in page


def test_members_page_grants_and_revokes(scenario):
    admin = client_for(scenario.tenant_admin)
    response = admin.post("/tenants/t/cs/members/", {"username": "a_student2", "role": "finance"})
    assert response.status_code == 302
    from tenants.models import Membership

    membership = Membership.objects.get(user=scenario.student2, role="finance")
    admin.post(f"/tenants/members/{membership.pk}/revoke/")
    assert not Membership.objects.filter(pk=membership.pk).exists()
    sysadmin = client_for(scenario.sysadmin).post(
        "/tenants/t/cs/members/", {"username": "a_student2", "role": "finance"}
    )
    # 三员分立: the system admin has no say over roles, so the members page does not exist for them.
    assert sysadmin.status_code == 404
    assert not Membership.objects.filter(user=scenario.student2, role="finance").exists()


@pytest.fixture
def compute_ready(scenario):
    env = make_env(scenario)
    Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    return env


def _wizard_post(client, course, env, seats):
    return client.post("/request/new/", _wizard_post_data(course, env, seats))


def _wizard_post_data(course, env, seats):
    return {
        "course": course.pk,
        "image_version": env.version.pk,
        "flavor": env.flavor.pk,
        "seats": seats,
        "persistence": "persistent",
        "reason": "",
        "ct-TOTAL_FORMS": "2",
        "ct-INITIAL_FORMS": "1",
        "ct-MIN_NUM_FORMS": "0",
        "ct-MAX_NUM_FORMS": "14",
        "ct-0-weekday": "1",
        "ct-0-start_time": "08:00",
        "ct-0-end_time": "10:00",
        "ct-1-weekday": "3",
        "ct-1-start_time": "14:00",
        "ct-1-end_time": "15:40",
    }


def test_wizard_submits_a_course_request_and_saves_class_times(scenario, course, compute_ready):
    teacher = client_for(scenario.teacher)
    response = _wizard_post(teacher, course, compute_ready, 2)
    assert response.status_code == 302, response.content.decode()[:2000]
    request = ApprovalRequest.objects.get()
    assert (request.kind, request.desktops, request.payload["seats"]) == ("course_desktops", 2, 2)
    assert request.payload["image_version"] == compute_ready.version.pk
    assert course.class_times.count() == 2


def test_wizard_refuses_over_quota_with_the_shortfall(scenario, course, compute_ready):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 2})
    response = _wizard_post(client_for(scenario.teacher), course, compute_ready, 5)
    page = response.content.decode()
    assert response.status_code == 200
    assert "还差 3" in page
    assert not ApprovalRequest.objects.exists()


def test_wizard_says_what_is_missing_in_plain_words(scenario, course):
    page = client_for(scenario.teacher).get(f"/request/new/?course={course.pk}").content.decode()
    assert "还没有本院系可用的镜像" in page
    assert "本院系还没有网络" in page


def test_wizard_rechecks_quota_as_the_teacher_goes(scenario, course, compute_ready):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"desktops": 3})
    response = client_for(scenario.teacher).get(
        f"/request/new/?course={course.pk}&flavor={compute_ready.flavor.pk}&image_version={compute_ready.version.pk}"
        "&seats=4&persistence=persistent",
        HTTP_HX_REQUEST="true",
    )
    assert "还差 1" in response.content.decode()
    assert "<html" not in response.content.decode()


def test_approver_approves_from_the_request_page(scenario, course):
    request = ApprovalRequest.objects.create(
        tenant=scenario.tenant_a,
        course=course,
        requester=scenario.teacher,
        kind="course_desktops",
        title="x",
        desktops=1,
    )
    request.steps.create(order=1, approver_role="tenant_admin")
    admin = client_for(scenario.tenant_admin)
    assert "x" in admin.get("/tenants/requests/?tab=queue").content.decode()
    admin.post(f"/tenants/requests/{request.pk}/approve/", {"comment": "同意"})
    request.refresh_from_db()
    assert request.state == "approved"
    again = admin.post(f"/tenants/requests/{request.pk}/approve/", follow=True).content.decode()
    assert "不能执行该操作" in again


def test_tenant_admin_edits_the_approval_policy_and_it_applies(scenario, course):
    admin = client_for(scenario.tenant_admin)
    assert "还没有审批策略" in admin.get("/tenants/t/cs/policy/").content.decode()
    response = admin.post(
        "/tenants/t/cs/policy/",
        {
            "name": "新策略",
            "step-TOTAL_FORMS": "2",
            "step-INITIAL_FORMS": "0",
            "step-0-approver_role": "tenant_admin",
            "step-1-approver_role": "system_admin",
            "step-1-above_gpus": "2",
            "rule-TOTAL_FORMS": "1",
            "rule-INITIAL_FORMS": "0",
            "rule-0-name": "小额",
            "rule-0-kind": "personal_desktop",
            "rule-0-max_desktops": "1",
            "rule-0-max_vcpu": "2",
            "rule-0-max_ram_gib": "4",
            "rule-0-max_gpus": "0",
        },
    )
    assert response.status_code == 302
    from tenants.models import ApprovalPolicy

    policy = ApprovalPolicy.objects.get(tenant=scenario.tenant_a)
    assert [s.approver_role for s in policy.steps.all()] == ["tenant_admin", "system_admin"]
    assert policy.rules.get().name == "小额"
    assert policy.rules.get().max_ram_mib == 4096  # typed in GiB, kept in MiB
    # The teacher reads the policy but cannot change it.
    teacher = client_for(scenario.teacher)
    assert teacher.get("/tenants/t/cs/policy/").status_code == 200
    assert teacher.post("/tenants/t/cs/policy/", {"name": "x"}).status_code == 404


def test_a_student_gets_a_small_personal_desktop_approved_automatically(scenario):
    from tenants.approvals import policy_set
    from tests.compute.conftest import make_env

    env = make_env(scenario)
    policy_set(
        actor=None,
        tenant=scenario.tenant_a,
        name="p",
        steps=[{"approver_role": "tenant_admin"}],
        rules=[
            {
                "name": "个人桌面",
                "kind": "personal_desktop",
                "max_desktops": 1,
                "max_vcpu": 2,
                "max_ram_mib": 4096,
                "max_disk_gib": 20,
            }
        ],
    )
    student = client_for(scenario.student)
    # The old form's link lands on the desktop request page, where the flavor is chosen.
    assert student.get("/tenants/requests/new/?kind=personal_desktop").url.startswith("/request/desktop/")
    page = student.get("/request/desktop/").content.decode()
    assert "GPU 仿真环境</option>" not in page  # a student asks for a personal desktop only
    response = student.post(
        "/request/desktop/",
        {
            "kind": "personal_desktop",
            "tenant": "cs",
            "title": "毕设用",
            "image_version": env.version.pk,
            "flavor": env.flavor.pk,
            "vcpu": "0",
        },
        follow=True,
    )
    page = response.content.decode()
    assert "由规则“个人桌面”自动批准" in page
    request = ApprovalRequest.objects.get()
    assert request.state in ("approved", "fulfilled")
    assert (request.desktops, request.vcpu) == (1, env.flavor.vcpus)  # planned from the flavor


def test_a_student_cannot_ask_for_a_gpu_environment(scenario):
    response = client_for(scenario.student).post(
        "/request/desktop/", {"kind": "gpu_environment", "title": "x", "tenant": "cs"}
    )
    assert response.status_code in (200, 404)
    assert not ApprovalRequest.objects.exists()


def test_the_teacher_grants_a_colleague_their_course(scenario, course):
    from tests import factories

    colleague = factories.member("colleague", scenario.tenant_a, "teacher")
    assert client_for(colleague).get(f"/tenants/courses/{course.pk}/").status_code == 404
    teacher = client_for(scenario.teacher)
    teacher.post(f"/tenants/courses/{course.pk}/", {"action": "grant", "username": "colleague"})
    assert "colleague" in teacher.get(f"/tenants/courses/{course.pk}/").content.decode()
    assert client_for(colleague).get(f"/tenants/courses/{course.pk}/").status_code == 200
    teacher.post(f"/tenants/courses/{course.pk}/", {"action": "ungrant", "username": "colleague"})
    assert client_for(colleague).get(f"/tenants/courses/{course.pk}/").status_code == 404


def test_wizard_on_a_course_with_a_pool_asks_to_change_that_pool(scenario, course, compute_ready):
    from compute.classroom.models import DesktopPool

    pool = DesktopPool.objects.create(
        course=course,
        tenant=scenario.tenant_a,
        name="CS101 桌面池",
        image_version=compute_ready.version,
        flavor=compute_ready.flavor,
    )
    teacher = client_for(scenario.teacher)
    assert 'data-testid="pool-change"' in teacher.get(f"/request/new/?course={course.pk}").content.decode()
    response = teacher.post(
        "/request/new/",
        {**_wizard_post_data(course, compute_ready, 2), "apply": "next_class"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = ApprovalRequest.objects.get()
    assert request.payload["pool"] == pool.pk and request.payload["apply"] == "next_class"
    assert request.desktops == 2  # the pool has no seats yet: both are more than it holds


def test_members_are_listed_admins_and_teachers_first_then_in_natural_order(scenario):
    import re

    from tests import factories

    for n in (10, 2, 1):
        user = factories.member(f"z_student{n}", scenario.tenant_a, "student")
        user.display_name = f"学生{n}"
        user.save(update_fields=["display_name"])

    html = client_for(scenario.tenant_admin).get("/tenants/t/cs/members/?role=&q=").content.decode()

    rows = re.findall(r'<span class="text-muted small">([^<]+)</span></td>\s*<td>([^<]+)</td>', html)
    names = [username for username, _role in rows]
    assert names.index("a_admin") < names.index("a_teacher") < names.index("a_student")
    students = [n for n in names if n.startswith("z_student")]
    assert students == ["z_student1", "z_student2", "z_student10"]
    assert '<label class="form-label small" for="role">' in html  # filters carry visible labels
