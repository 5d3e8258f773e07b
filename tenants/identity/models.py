"""Links between portal accounts and campus identities, per-account sign-in state, per-tenant placement."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant
from tenants.roles import TenantRole


class Source(models.TextChoices):
    LOCAL = "local", _("本地账号")
    CAS = "cas", _("CAS 统一身份认证")
    LDAP = "ldap", _("LDAP/AD")
    OIDC = "oidc", _("OIDC")


class ExternalIdentity(models.Model):
    """A campus identity (a CAS or LDAP subject) linked to one portal account, by its number."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    source = models.CharField(_("来源"), max_length=10, choices=Source.choices)
    subject = models.CharField(_("统一身份账号"), max_length=150)
    number = models.CharField(_("学号/工号"), max_length=32, db_index=True)
    linked_at = models.DateTimeField(_("关联时间"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("最近登录"), null=True, blank=True)

    class Meta:
        verbose_name = _("统一身份关联")
        verbose_name_plural = _("统一身份关联")
        constraints = [models.UniqueConstraint(fields=["source", "subject"], name="identity_unique_subject")]

    def __str__(self):
        return f"{self.source}:{self.subject} -> {self.user_id}"


class AccountState(models.Model):
    """What sign-in needs to know about an account beyond Django's User: created by whom, how last signed in."""

    class Kind(models.TextChoices):
        PERSON = "person", _("个人账号")
        SERVICE = "service", _("服务账号（API）")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_state")
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices, default=Kind.PERSON)
    # 等保: one identity, one way in. The security admin may allow a linked account its local password too.
    local_password_allowed = models.BooleanField(_("允许本地密码登录"), default=False)
    # The hash an admin's reset set: while the account still has it, the next sign-in must change it.
    reset_password_hash = models.CharField(max_length=128, blank=True)
    last_login_source = models.CharField(_("最近登录方式"), max_length=10, choices=Source.choices, blank=True)
    last_login_mfa = models.CharField(_("最近登录的第二因素"), max_length=64, blank=True)
    activated_at = models.DateTimeField(_("首次统一身份登录"), null=True, blank=True)
    department = models.CharField(_("目录中的院系"), max_length=64, blank=True)
    purpose = models.CharField(_("用途"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("账号状态")
        verbose_name_plural = _("账号状态")

    def __str__(self):
        return f"{self.user_id} {self.kind}"


class TenantDirectory(models.Model):
    """A tenant's placement rule: staff whose directory department is one of `departments` join it."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="directory")
    departments = models.CharField(
        _("目录中的院系代码"), max_length=255, blank=True, help_text=_("多个代码用逗号分隔，例如 cs,cs-ai")
    )
    place_new_staff = models.BooleanField(_("自动将新教职工加入本租户"), default=False)
    staff_role = models.CharField(
        _("新教职工的角色"), max_length=20, choices=TenantRole.choices, default=TenantRole.TEACHER
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("目录对应")
        verbose_name_plural = _("目录对应")

    def __str__(self):
        return f"{self.tenant.slug}: {self.departments}"

    def codes(self) -> set[str]:
        return {code.strip().lower() for code in self.departments.split(",") if code.strip()}


class IdentityConflict(models.Model):
    """A campus identity whose number matches several portal accounts: refused, shown to the tenant admin."""

    source = models.CharField(_("来源"), max_length=10, choices=Source.choices)
    subject = models.CharField(_("统一身份账号"), max_length=150)
    number = models.CharField(_("学号/工号"), max_length=32)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    usernames = models.JSONField(_("匹配到的账号"), default=list)
    occurred_at = models.DateTimeField(_("时间"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("身份冲突")
        verbose_name_plural = _("身份冲突")
        ordering = ["-occurred_at", "-id"]

    def __str__(self):
        return f"{self.source}:{self.subject} ({self.number})"


class ApiToken(models.Model):
    """An API token of one device (a laptop, a script), named by its owner, listed and revocable.

    Only the SHA-256 of the key is stored: the key is shown once. A person's token expires
    (API_TOKEN_HOURS) and follows the session rules on every request (tenants.identity.tokens);
    a service account's token is made by the security admin and lasts until revoked.
    """

    class Kind(models.TextChoices):
        PERSON = "person", _("个人令牌")
        SERVICE = "service", _("服务账号令牌")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("设备名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=10, choices=Kind.choices, default=Kind.PERSON)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(_("前缀"), max_length=8)
    # Whether a second factor was checked when the token was issued: a token without one never
    # acts with a role that needs one, whenever that role was granted.
    second_factor = models.BooleanField(_("签发时已验证第二因素"), default=False)
    created_at = models.DateTimeField(_("签发时间"), auto_now_add=True)
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("API 令牌")
        verbose_name_plural = _("API 令牌")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.user_id}: {self.name} ({self.prefix}…)"
