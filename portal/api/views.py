"""Project-wide API endpoints: token login, the caller's own tokens and profile."""

from django.contrib.auth import authenticate
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.security import auth_failure_of, needs_second_factor, otp_verify, second_factor_check
from common.errors import ServiceError
from portal.errors import PortalError
from tenants.identity.errors import ErrorCode as IdentityError
from tenants.identity.selectors import must_change_password
from tenants.identity.tokens import token_issue, token_list_for, token_revoke
from tenants.selectors import memberships_of, platform_role_of


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"}, trim_whitespace=False)
    otp = serializers.CharField(max_length=12, required=False, allow_blank=True)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, help_text="the device, e.g. 笔记本")


class TokenView(APIView):
    """Exchange a username and password (and a one-time code when required) for an API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer(
                "TokenResponse",
                {
                    "token": serializers.CharField(),
                    "id": serializers.IntegerField(),
                    "name": serializers.CharField(),
                    "expires_at": serializers.DateTimeField(allow_null=True),
                },
            )
        },
        operation_id="auth_token_create",
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # Local and directory (LDAP) credentials alike: Django's backends, django-axes' lockout first.
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            failure = auth_failure_of(request)
            if failure.get("code") == IdentityError.DIRECTORY_UNAVAILABLE:
                raise ServiceError(failure["message"], code=IdentityError.DIRECTORY_UNAVAILABLE, status=503)
            # Never say which half was wrong.
            raise ServiceError(_("用户名或密码错误。"), code=PortalError.INVALID_CREDENTIALS, status=400)
        otp = data.get("otp", "")
        second_factor_check(user=user, otp=otp)  # platform admins, finance, auditors: refused without it
        # Checked above when the roles need it; otherwise a code the person chose to give counts too.
        second_factor = needs_second_factor(user) or bool(otp and otp_verify(user, otp))
        if must_change_password(user):
            raise ServiceError(
                _("管理员重置了您的密码，请先在网页上修改密码。"),
                code=IdentityError.PASSWORD_CHANGE_REQUIRED,
                status=403,
            )
        token, key = token_issue(user=user, name=data.get("name", ""), second_factor=second_factor)
        return Response({"token": key, "id": token.pk, "name": token.name, "expires_at": token.expires_at})


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    prefix = serializers.CharField()
    second_factor = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    current = serializers.SerializerMethodField()

    def get_current(self, token) -> bool:
        return getattr(self.context["request"].auth, "pk", None) == token.pk


class TokenListView(APIView):
    """The caller's own API tokens, one per device (never another person's)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=ApiTokenSerializer(many=True), operation_id="auth_tokens_list")
    def get(self, request):
        tokens = token_list_for(request.user)
        return Response(ApiTokenSerializer(tokens, many=True, context={"request": request}).data)


class TokenDetailView(APIView):
    """Revoke one of the caller's tokens (another person's is a 404)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None}, operation_id="auth_tokens_destroy")
    def delete(self, request, pk: int):
        token_revoke(actor=request.user, token_id=pk)
        return Response(status=204)


class TenantRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    display_name = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    platform_role = serializers.CharField(allow_null=True)
    tenants = TenantRefSerializer(many=True)


class MeView(APIView):
    """The caller: username, display name, roles and tenants."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer, operation_id="users_me_retrieve")
    def get(self, request):
        user = request.user
        memberships = memberships_of(user)
        platform = platform_role_of(user)
        roles = sorted({m.role for m in memberships} | ({platform} if platform else set()))
        payload = {
            "username": user.username,
            "display_name": user.get_full_name(),
            "roles": roles,
            "platform_role": platform,
            "tenants": [{"slug": m.tenant.slug, "name": m.tenant.name, "role": m.role} for m in memberships],
        }
        return Response(MeSerializer(payload).data)
