"""factory_boy factories shared by every app's tests."""

import datetime

import factory
from django.contrib.auth.hashers import make_password

from tenants.models import Course, Membership, PlatformAssignment, Tenant, User

PASSWORD = "Test@2026!pw"
_PASSWORD_HASH = None


def password_hash() -> str:
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = make_password(PASSWORD)
    return _PASSWORD_HASH


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"t{n}")
    name_zh = factory.LazyAttribute(lambda o: f"租户{o.slug}")
    name_en = factory.LazyAttribute(lambda o: f"Tenant {o.slug}")
    kind = Tenant.Kind.COLLEGE
    parent = None
    path = factory.LazyAttribute(lambda o: f"{o.parent.path if o.parent else '/'}{o.slug}/")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.LazyAttribute(lambda o: f"用户 {o.username}")
    password = factory.LazyFunction(password_hash)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = "student"


class PlatformAssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlatformAssignment

    user = factory.SubFactory(UserFactory)
    role = "system_admin"


def member(username: str, tenant: Tenant, role: str) -> User:
    user = UserFactory(username=username)
    MembershipFactory(user=user, tenant=tenant, role=role)
    return user


def platform_admin(username: str, role: str) -> User:
    user = UserFactory(username=username)
    PlatformAssignmentFactory(user=user, role=role)
    return user


def cs101(scenario, *, name: str = "计算机导论") -> Course:
    """CS101 of the scenario's tenant cs, taught by its teacher, autumn term 2026 (no roster, no class times)."""
    return Course.objects.create(
        tenant=scenario.tenant_a,
        code="CS101",
        name=name,
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )
