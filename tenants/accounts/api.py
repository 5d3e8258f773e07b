"""REST API of account management: /api/v1/accounts/ (tenant admins, the security admin) and
/api/v1/platform-roles/ (the security admin's 三员 assignments). Thin: selectors read, services write."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from common.api.parsers import StrictJSONParser
from common.errors import NotFound
from tenants import services as tenant_services
from tenants.accounts import selectors, services
from tenants.identity.models import AccountState
from tenants.identity.selectors import must_change_password
from tenants.models import PlatformAssignment, Tenant, User
from tenants.roles import PlatformRole, TenantRole
from tenants.roster import roster_parse

# The roles a service account or a placed new staff member may get (OpenAPI: StaffRoleEnum).
STAFF_ROLE_CHOICES = [(r.value, r.label) for r in (TenantRole.TEACHER, TenantRole.FINANCE, TenantRole.AUDITOR)]


class AccountSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField()
    last_login_source = serializers.SerializerMethodField()
    last_login_mfa = serializers.SerializerMethodField()
    local_password_allowed = serializers.SerializerMethodField()
    must_change_password = serializers.SerializerMethodField()
    sources = serializers.SerializerMethodField()
    tenants = serializers.SerializerMethodField()
    platform_role = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id", "username", "display_name", "student_number", "email", "is_active", "kind", "last_login",
            "last_login_source", "last_login_mfa", "local_password_allowed", "must_change_password", "sources",
            "tenants", "platform_role",
        ]  # fmt: skip

    def _state(self, user) -> AccountState | None:
        return getattr(user, "account_state", None) if hasattr(user, "account_state") else None

    def get_kind(self, user) -> str:
        state = self._state(user)
        return state.kind if state else AccountState.Kind.PERSON

    def get_last_login_source(self, user) -> str:
        state = self._state(user)
        return state.last_login_source if state else ""

    def get_last_login_mfa(self, user) -> str:
        state = self._state(user)
        return state.last_login_mfa if state else ""

    def get_local_password_allowed(self, user) -> bool:
        state = self._state(user)
        return bool(state and state.local_password_allowed)

    def get_must_change_password(self, user) -> bool:
        return must_change_password(user)

    def get_sources(self, user) -> list[str]:
        return sorted({link.source for link in user.external_identities.all()})

    def get_tenants(self, user) -> list[dict]:
        return [{"slug": m.tenant.slug, "role": m.role} for m in user.memberships.all()]

    def get_platform_role(self, user) -> str | None:
        assignment = getattr(user, "platform_role", None) if hasattr(user, "platform_role") else None
        return assignment.role if assignment else None


class AccountCreateSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    username = serializers.CharField(max_length=150)
    display_name = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=TenantRole.choices)
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})
    student_number = serializers.RegexField(r"^[A-Za-z0-9_-]{1,32}$", required=False, allow_blank=True, default="")
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class PasswordResetSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})


class LocalPasswordSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()


class ServiceAccountSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    username = serializers.CharField(max_length=150)
    display_name = serializers.CharField(max_length=150, required=False, default="")
    role = serializers.ChoiceField(choices=STAFF_ROLE_CHOICES)
    purpose = serializers.CharField(max_length=200)


class StaffImportSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    role = serializers.ChoiceField(choices=TenantRole.choices, required=False, default=TenantRole.TEACHER)
    file = serializers.FileField()


class DirectorySerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    departments = serializers.CharField(max_length=255, allow_blank=True)
    place_new_staff = serializers.BooleanField()
    staff_role = serializers.ChoiceField(choices=STAFF_ROLE_CHOICES, required=False, default="teacher")


def _managed_tenant(request, slug: str) -> Tenant:
    tenant = selectors.managed_tenants_for(request.user).filter(slug=slug).first()
    if tenant is None:
        raise NotFound(code="tenant_not_found")
    return tenant


def _validated(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Accounts a tenant admin (their tenants' subtrees) or the security admin (all) manages."""

    serializer_class = AccountSerializer
    parser_classes = [StrictJSONParser, FormParser, MultiPartParser]
    search_fields = ["username", "display_name", "student_number"]
    filterset_fields = ["is_active"]

    def get_queryset(self):
        return selectors.account_list_for(self.request.user)

    def _answer(self, user, status_code=status.HTTP_200_OK):
        return Response(
            AccountSerializer(selectors.account_get_for(self.request.user, pk=user.pk)).data, status=status_code
        )

    @extend_schema(request=AccountCreateSerializer, responses={201: AccountSerializer})
    def create(self, request):
        data = _validated(AccountCreateSerializer, request)
        user = services.account_create(
            actor=request.user,
            tenant=_managed_tenant(request, data["tenant"]),
            username=data["username"],
            display_name=data["display_name"],
            role=data["role"],
            password=data["password"],
            number=data["student_number"],
            email=data["email"],
        )
        return self._answer(user, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=AccountSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        user = services.account_set_active(actor=request.user, user=self.get_object(), active=False)
        return Response(AccountSerializer(user).data)

    @extend_schema(request=None, responses=AccountSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        user = services.account_set_active(actor=request.user, user=self.get_object(), active=True)
        return Response(AccountSerializer(user).data)

    @extend_schema(request=PasswordResetSerializer, responses=AccountSerializer)
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request, pk=None):
        user = self.get_object()
        services.account_password_reset(
            actor=request.user, user=user, new_password=_validated(PasswordResetSerializer, request)["password"]
        )
        return self._answer(user)

    @extend_schema(request=LocalPasswordSerializer, responses=AccountSerializer)
    @action(detail=True, methods=["post"], url_path="local-password")
    def local_password(self, request, pk=None):
        user = self.get_object()
        allowed = _validated(LocalPasswordSerializer, request)["allowed"]
        services.account_local_password_set(actor=request.user, user=user, allowed=allowed)
        return self._answer(user)

    @extend_schema(
        request=ServiceAccountSerializer,
        responses={
            201: inline_serializer(
                "ServiceAccount", {"username": serializers.CharField(), "token": serializers.CharField()}
            )
        },
    )
    @action(detail=False, methods=["post"])
    def service(self, request):
        data = _validated(ServiceAccountSerializer, request)
        tenant = get_object_or_404(Tenant, slug=data["tenant"], is_active=True)
        user, token = services.service_account_create(
            actor=request.user,
            username=data["username"],
            display_name=data["display_name"],
            tenant=tenant,
            role=data["role"],
            purpose=data["purpose"],
        )
        return Response({"username": user.username, "token": token}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": StaffImportSerializer},
        responses={200: inline_serializer("StaffImportResult", {
            "created_accounts": serializers.IntegerField(), "granted": serializers.IntegerField(),
            "unchanged": serializers.IntegerField()})},
    )  # fmt: skip
    @action(detail=False, methods=["post"], url_path="staff-import", parser_classes=[MultiPartParser, FormParser])
    def staff_import(self, request):
        data = _validated(StaffImportSerializer, request)
        tenant = _managed_tenant(request, data["tenant"])
        upload = data["file"]
        rows = roster_parse(filename=upload.name, content=upload.read())
        return Response(services.staff_import(actor=request.user, tenant=tenant, rows=rows, role=data["role"]))

    @extend_schema(request=DirectorySerializer, responses=DirectorySerializer)
    @action(detail=False, methods=["post"])  # POST, not PUT: OPTIONS on a list route would look up an object
    def directory(self, request):
        data = _validated(DirectorySerializer, request)
        directory = services.tenant_directory_set(
            actor=request.user,
            tenant=_managed_tenant(request, data["tenant"]),
            departments=data["departments"],
            place_new_staff=data["place_new_staff"],
            staff_role=data["staff_role"],
        )
        return Response(
            {"tenant": directory.tenant.slug, "departments": directory.departments,
             "place_new_staff": directory.place_new_staff, "staff_role": directory.staff_role}
        )  # fmt: skip


class PlatformRoleSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all())

    class Meta:
        model = PlatformAssignment
        fields = ["id", "user", "role", "granted_at"]
        read_only_fields = ["granted_at"]


class PlatformRoleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """三员分立: the security admin grants and revokes the three platform roles (one per person, a database rule)."""

    serializer_class = PlatformRoleSerializer

    def get_queryset(self):
        from tenants.permissions import is_platform

        if is_platform(self.request.user, PlatformRole.SECURITY_ADMIN):
            return PlatformAssignment.objects.select_related("user").order_by("role", "user__username")
        return PlatformAssignment.objects.none()

    def create(self, request):
        serializer = PlatformRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assignment = tenant_services.platform_role_grant(
            actor=request.user, user=serializer.validated_data["user"], role=serializer.validated_data["role"]
        )
        return Response(PlatformRoleSerializer(assignment).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        tenant_services.platform_role_revoke(actor=request.user, assignment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def register(router) -> None:
    router.register("accounts", AccountViewSet, basename="account")
    router.register("platform-roles", PlatformRoleViewSet, basename="platform-role")


urlpatterns: list = []
