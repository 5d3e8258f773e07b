"""seed_demo's tenants part: every demo account its role, CS101 with its 30 students, quotas, policies."""

from django.utils import timezone

from tenants import demo, selectors
from tenants.models import ApprovalPolicy, Course, Quota, User


def test_seed_gives_every_demo_account_its_role_and_cs101_its_roster(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    first = demo.seed()
    assert demo.seed() == first  # idempotent

    expected = {
        "sysadmin": {"system_admin"},
        "secadmin": {"security_admin"},
        "auditadmin": {"audit_admin"},
        "cs_admin": {"tenant_admin"},
        "teacher1": {"teacher"},
        "finance1": {"finance"},
        "auditor1": {"auditor"},
        "me_admin": {"tenant_admin"},
        "teacher2": {"teacher"},
        "student31": {"student"},
        **{f"student{n}": {"student"} for n in range(1, 31)},
    }
    for username, roles in expected.items():
        assert selectors.roles_of(User.objects.get(username=username)) == roles, username

    course = Course.objects.get(code="CS101", tenant__slug="cs")
    assert course.teacher.username == "teacher1"
    assert sorted(course.students.values_list("username", flat=True)) == sorted(f"student{n}" for n in range(1, 31))
    assert course.term_start <= timezone.localdate() <= course.term_end
    assert course.class_times.count() == 2
    assert Quota.objects.filter(scope="tenant", tenant__slug__in=["cs", "me"]).count() == 2
    assert ApprovalPolicy.objects.filter(tenant__slug__in=["cs", "me"]).count() == 2
    assert User.objects.get(username="teacher1").has_perm("tenants.manage_course", course)


def test_seeding_again_locks_no_account(db, settings):
    """Beside a live worker creating the students' desktops, seeding again must not queue on their
    accounts (a grant locks the account FOR UPDATE): the roles already held are left alone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    demo.seed()

    with CaptureQueriesContext(connection) as queries:
        demo.seed()

    locking = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert locking == []
