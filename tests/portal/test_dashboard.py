"""The dashboard shows each role what it needs first, and nothing of other roles."""

import pytest

from audit.testing import force_login_verified

pytestmark = pytest.mark.django_db


def _page(client, user) -> str:
    # Platform admins, finance and auditors need a verified second factor to see any page.
    force_login_verified(client, user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_student_sees_their_desktops_panel_and_no_approval_queue(client, scenario):
    html = _page(client, scenario.student)

    assert 'id="panel-my-desktops"' in html
    assert "您还没有云桌面" in html
    assert 'id="panel-queue"' not in html
    assert 'id="panel-estimate"' not in html


def test_a_teacher_sees_pools_and_their_requests(client, scenario):
    html = _page(client, scenario.teacher)

    assert 'id="panel-pools"' in html
    assert 'id="panel-my-desktops"' not in html


def test_a_tenant_admin_sees_how_many_requests_wait(client, scenario):
    html = _page(client, scenario.tenant_admin)

    assert 'data-testid="queue-count">0<' in html


def test_the_system_admin_sees_platform_resources(client, scenario):
    html = _page(client, scenario.sysadmin)

    assert 'id="panel-platform"' in html
    assert "尚未注册虚拟化端点" in html


def test_an_auditor_sees_the_chain_status(client, scenario):
    from audit.models import ChainVerification

    ChainVerification.objects.create(ok=True, checked=12)

    html = _page(client, scenario.auditor)

    assert 'id="panel-chain"' in html
    assert "已校验 12 条事件" in html
    assert 'id="panel-platform"' not in html
