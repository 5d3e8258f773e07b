"""The audit app's 等保 catalogue: the checks it evaluates from its own state and the settings.

The check functions come first, the catalogue table last. Checks that need tenant or account
data are tenants' catalogue (tenants/compliance.py). Registered by AuditConfig.ready().
"""

import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.compliance import (
    AM,
    CC,
    DB,
    DC,
    DI,
    IA,
    IP,
    MANUAL,
    PI,
    RI,
    SA,
    Check,
    Status,
    beat_has,
    second_factor_coverage,
    verdict,
)
from audit.models import AuditArchive, AuditEvent, ChainVerification
from audit.policy import current_policy

STRONG_HASHERS = ("pbkdf2", "argon2", "bcrypt", "scrypt")
CHAIN_TASK = "audit.tasks.verify_chain"


def _validator_names() -> set[str]:
    return {entry["NAME"].rsplit(".", 1)[-1] for entry in settings.AUTH_PASSWORD_VALIDATORS}


# --- 身份鉴别 ---------------------------------------------------------------------------------


def password_policy(level: int) -> tuple[Status, str]:
    policy = current_policy()
    names = _validator_names()
    problems = []
    if policy.password_min_length < 8 or "PolicyMinimumLengthValidator" not in names:
        problems.append(_("密码长度要求不足 8 位"))
    if policy.password_min_classes < 3 or "CharacterClassesValidator" not in names:
        problems.append(_("未要求至少 3 类字符"))
    if "NotUsernameValidator" not in names:
        problems.append(_("未禁止密码包含用户名"))
    if policy.password_history < 5 or "PasswordHistoryValidator" not in names:
        problems.append(_("未禁止重复使用最近 5 次密码"))
    if policy.password_max_age_days > 90:
        problems.append(_("密码有效期超过 90 天"))
    evidence = _(
        "口令策略：长度≥%(len)d，字符类别≥%(cls)d/4，不含用户名，不与最近 %(hist)d 次相同，有效期 %(age)d 天，到期登录时强制修改。"  # noqa: E501
    ) % {
        "len": policy.password_min_length,
        "cls": policy.password_min_classes,
        "hist": policy.password_history,
        "age": policy.password_max_age_days,
    }
    if not problems:
        return Status.CONFORM, evidence
    status = Status.PARTIAL if len(problems) < 3 else Status.NONCONFORM
    return status, _("%(evidence)s 问题：%(problems)s") % {
        "evidence": evidence,
        "problems": "；".join(str(p) for p in problems),
    }


def login_failure_handling(level: int) -> tuple[Status, str]:
    policy = current_policy()
    lockout_on = settings.AXES_ENABLED and "axes.backends.AxesStandaloneBackend" in settings.AUTHENTICATION_BACKENDS
    lockout_ok = lockout_on and policy.lockout_failures <= 5 and policy.lockout_minutes >= 30
    idle_ok = "audit.middleware.IdleTimeoutMiddleware" in settings.MIDDLEWARE and policy.idle_timeout_minutes <= 15
    evidence = _("登录失败锁定：%(lock)s；空闲超时：%(idle)s；退出时服务端会话删除（%(engine)s）。") % {
        "lock": _("连续失败 %(n)d 次锁定 %(m)d 分钟") % {"n": policy.lockout_failures, "m": policy.lockout_minutes}
        if lockout_on
        else _("未启用"),
        "idle": _("%(n)d 分钟") % {"n": policy.idle_timeout_minutes} if idle_ok else _("未启用或超过 15 分钟"),
        "engine": settings.SESSION_ENGINE.rsplit(".", 1)[-1],
    }
    if not lockout_ok:  # limiting failed logins is the heart of this indicator
        return Status.NONCONFORM, evidence
    return verdict(idle_ok), evidence


def tls_settings(level: int) -> tuple[Status, str]:
    parts = {
        "SECURE_SSL_REDIRECT": bool(getattr(settings, "SECURE_SSL_REDIRECT", False)),
        "SECURE_HSTS_SECONDS": getattr(settings, "SECURE_HSTS_SECONDS", 0) >= 31536000,
        "SESSION_COOKIE_SECURE": bool(getattr(settings, "SESSION_COOKIE_SECURE", False)),
        "CSRF_COOKIE_SECURE": bool(getattr(settings, "CSRF_COOKIE_SECURE", False)),
    }
    evidence = "；".join(f"{name}={'是' if ok else '否'}" for name, ok in parts.items())
    if all(parts.values()):
        return Status.CONFORM, _("强制 HTTPS 与 HSTS，Cookie 仅经 HTTPS 发送：") + evidence
    if any(parts.values()):
        return Status.PARTIAL, _("TLS 配置不完整：") + evidence
    return Status.NONCONFORM, _("未强制 HTTPS（开发模式？）：") + evidence


def privileged_second_factor(level: int) -> tuple[Status, str]:
    from audit.security import SECOND_FACTOR_ROLES

    total, covered = second_factor_coverage(*SECOND_FACTOR_ROLES)
    if not total:
        return Status.NONCONFORM, _("没有可核查的特权账号（角色信息不可用）。")
    enforced = getattr(settings, "SECOND_FACTOR_REQUIRED", True)
    evidence = _(
        "特权账号（平台管理员、财务、审计员）%(total)d 个，已绑定动态口令 %(covered)d 个；登录强制双因素：%(on)s。"
    ) % {
        "total": total,
        "covered": covered,
        "on": _("是") if enforced else _("否"),
    }
    return verdict(covered == total and enforced, partly=bool(covered or enforced)), evidence


# --- 安全审计 ---------------------------------------------------------------------------------


def audit_enabled(level: int) -> tuple[Status, str]:
    wired = "audit.middleware.AuditContextMiddleware" in settings.MIDDLEWARE
    since = timezone.now() - timedelta(days=7)
    recent = AuditEvent.objects.filter(occurred_at__gte=since).count()
    logins = AuditEvent.objects.filter(occurred_at__gte=since, action__startswith="auth.").count()
    evidence = _("审计由服务层在同一事务内写入（写不进则操作失败）；近 7 天事件 %(n)d 条，其中登录类 %(l)d 条。") % {
        "n": recent,
        "l": logins,
    }
    return verdict(wired and bool(recent), partly=wired), evidence


def audit_record_content(level: int) -> tuple[Status, str]:
    fields = {f.name for f in AuditEvent._meta.get_fields()}
    needed = [
        "occurred_at",
        "actor_username",
        "actor_role",
        "source_ip",
        "action",
        "object_type",
        "result",
        "request_id",
    ]
    missing = [name for name in needed if name not in fields]
    if missing:
        return Status.NONCONFORM, f"missing: {missing}"
    return Status.CONFORM, _(
        "审计记录字段：时间（UTC，按北京时间显示）、操作者及其角色和租户、来源IP、客户端、操作类型、对象、结果及原因、请求ID。"
    )


def _last_verification(last: ChainVerification | None) -> str:
    if last is None:
        return _("从未校验")
    return _("%(when)s，%(ok)s，已校验 %(n)d 条") % {
        "when": timezone.localtime(last.checked_at).strftime("%Y-%m-%d %H:%M"),
        "ok": _("完整") if last.ok else _("发现篡改，首个异常事件 #%(id)s") % {"id": last.first_bad},
        "n": last.checked,
    }


def audit_protection(level: int) -> tuple[Status, str]:
    from audit import triggers

    last = ChainVerification.objects.first()
    fresh = last is not None and timezone.now() - last.checked_at < timedelta(days=2)
    present = triggers.installed(connection)
    expected = {name for name, *_rest in triggers.TRIGGERS}
    evidence = _("HMAC-SHA256 哈希链；数据库触发器禁止修改/删除：%(t)s；最近一次校验：%(v)s。") % {
        "t": _("已安装") if present == expected else _("缺失 %(n)s") % {"n": ", ".join(sorted(expected - present))},
        "v": _last_verification(last),
    }
    if last is not None and not last.ok:
        return Status.NONCONFORM, evidence
    return verdict(present == expected and fresh), evidence


def audit_retention(level: int) -> tuple[Status, str]:
    days = current_policy().audit_retention_days
    # The earliest time in the log, not the first id: imported and back-filled history has later ids.
    oldest = AuditEvent.objects.aggregate(oldest=Min("occurred_at"))["oldest"]
    evidence = _(
        "保留期 %(d)d 天（网络安全法第二十一条要求不少于六个月）；最早在库事件：%(o)s；归档文件 %(a)d 个（签名压缩，不删除）。"  # noqa: E501
    ) % {
        "d": days,
        "o": timezone.localtime(oldest).strftime("%Y-%m-%d") if oldest else "—",
        "a": AuditArchive.objects.count(),
    }
    return verdict(days >= 180, partly=False), evidence


# Evidence of audit_process_protection by (verification scheduled, alerts mailed).
_PROCESS_EVIDENCE = {
    (True, True): gettext_lazy("定期校验任务：已配置；告警：错误日志及邮件。"),
    (True, False): gettext_lazy("定期校验任务：已配置；告警：错误日志。"),
    (False, True): gettext_lazy("定期校验任务：未配置；告警：错误日志及邮件。"),
    (False, False): gettext_lazy("定期校验任务：未配置；告警：错误日志。"),
}


def audit_process_protection(level: int) -> tuple[Status, str]:
    scheduled = beat_has(CHAIN_TASK)
    evidence = str(_PROCESS_EVIDENCE[scheduled, bool(settings.ADMINS)])
    return verdict(scheduled, partly=False), evidence


# --- 入侵防范, 数据完整性, 数据保密性, 数据备份恢复, 剩余信息保护 -------------------------------------


def input_validation(level: int) -> tuple[Status, str]:
    evidence = _("所有输入经表单/序列化器校验，错误返回 400/409 而非 500；请求体上限 %(mb)d MB；DEBUG=%(d)s。") % {
        "mb": settings.MAX_REQUEST_BODY // (1024 * 1024),
        "d": settings.DEBUG,
    }
    return verdict(not settings.DEBUG), evidence


def storage_integrity(level: int) -> tuple[Status, str]:
    configured = bool(settings.AUDIT_HMAC_KEY)
    evidence = _("审计记录以 HMAC-SHA256 链保护；密钥：%(k)s。") % {
        "k": _("独立配置（AUDIT_HMAC_KEY）") if configured else _("由 SECRET_KEY 派生（仅开发环境）")
    }
    return verdict(configured), evidence


def storage_confidentiality(level: int) -> tuple[Status, str]:
    from django.contrib.auth.hashers import get_hasher

    default = get_hasher()
    hasher = f"{default.algorithm} ({getattr(default, 'iterations', '')})".replace(" ()", "")
    strong = default.algorithm.startswith(STRONG_HASHERS)
    field_key = bool(getattr(settings, "FIELD_ENCRYPTION_KEY", ""))
    evidence = _("口令哈希算法：%(h)s；虚拟化平台凭据加密存储，密钥：%(k)s。") % {
        "h": hasher,
        "k": _("独立配置") if field_key else _("由 SECRET_KEY 派生"),
    }
    return verdict(strong and field_key, partly=strong), evidence


def backups_recent(level: int) -> tuple[Status, str]:
    path = settings.BACKUP_STATUS_FILE
    if not path:
        return Status.NONCONFORM, _("未配置备份状态文件（BACKUP_STATUS_FILE），无法确认备份。")
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError:
        return Status.NONCONFORM, _("备份状态文件 %(p)s 不存在。") % {"p": path}
    hours = age / 3600
    evidence = _("最近一次成功备份：%(h).1f 小时前。") % {"h": hours}
    return verdict(hours <= 26, partly=hours <= 24 * 7), evidence


def residual_auth_info(level: int) -> tuple[Status, str]:
    engine = settings.SESSION_ENGINE
    evidence = _("会话保存在服务端（%(e)s），退出或超时即删除；口令仅以加盐哈希保存。") % {
        "e": engine.rsplit(".", 1)[-1]
    }
    return verdict("signed_cookies" not in engine), evidence


# --- 审计管理, 集中管控 -------------------------------------------------------------------------


def auditors_read_only(level: int) -> tuple[Status, str]:
    classes = settings.REST_FRAMEWORK.get("DEFAULT_PERMISSION_CLASSES", [])
    evidence = _(
        "审计员与审计管理员只读（API 默认权限 AuditorsReadOnly）；审计日志可按时间、操作者、租户、操作、对象、结果、来源IP检索与导出，导出本身被审计。"  # noqa: E501
    )
    return verdict(any(name.endswith("AuditorsReadOnly") for name in classes), partly=False), evidence


def central_control(level: int) -> tuple[Status, str]:
    evidence = _("审计数据集中存于门户数据库并定期校验；安全事件（锁定、篡改）产生审计记录与告警。")
    return verdict(beat_has(CHAIN_TASK) and bool(settings.ADMINS)), evidence


# --- the catalogue ----------------------------------------------------------------------------
# One row per 测评指标: id, control, clause at each level (a level missing: does not apply there),
# check function (MANUAL: the security admin records the finding), the indicator as GB/T
# 22239-2019 words it, and the advice when it is not met. Reports quote both in Chinese.

# fmt: off
CATALOGUE = [
    Check("ia.password", IA, {2: "7.1.4.1 a)", 3: "8.1.4.1 a)"}, password_policy,
          "应对登录的用户进行身份标识和鉴别，身份标识具有唯一性，身份鉴别信息具有复杂度要求并定期更换",
          "在“安全策略”页将口令长度、复杂度、历史与有效期调整到平台底线以内。"),
    Check("ia.lockout", IA, {2: "7.1.4.1 b)", 3: "8.1.4.1 b)"}, login_failure_handling,
          "应具有登录失败处理功能，应配置并启用结束会话、限制非法登录次数和当登录连接超时自动退出等相关措施",
          "启用登录失败锁定（AXES_ENABLED），锁定阈值不超过 5 次、时长不少于 30 分钟，空闲超时不超过 15 分钟。"),
    Check("ia.tls", IA, {2: "7.1.4.1 c)", 3: "8.1.4.1 c)"}, tls_settings,
          "当进行远程管理时，应采取必要措施防止鉴别信息在网络传输过程中被窃听",
          "以 DJANGO_ENV=production 部署于 HTTPS 之后，启用 HSTS 与 Secure Cookie。"),
    Check("ia.mfa", IA, {3: "8.1.4.1 d)"}, privileged_second_factor,
          "应采用口令、密码技术、生物技术等两种或两种以上组合的鉴别技术对用户进行身份鉴别",
          "要求所有平台管理员、财务与审计员绑定动态口令（TOTP）。"),
    Check("sa.enabled", SA, {2: "7.1.4.3 a)", 3: "8.1.4.3 a)"}, audit_enabled,
          "应启用安全审计功能，审计覆盖到每个用户，对重要的用户行为和重要安全事件进行审计",
          "确认审计中间件已启用，各业务服务均写入审计事件。"),
    Check("sa.content", SA, {2: "7.1.4.3 b)", 3: "8.1.4.3 b)"}, audit_record_content,
          "审计记录应包括事件的日期和时间、用户、事件类型、事件是否成功及其他与审计相关的信息",
          "补全审计记录字段。"),
    Check("sa.protection", SA, {2: "7.1.4.3 c)", 3: "8.1.4.3 c)"}, audit_protection,
          "应对审计记录进行保护，定期备份，避免受到未预期的删除、修改或覆盖等",
          "运行 verify_audit_chain 排查篡改；确认数据库触发器已安装（迁移 audit 0003）。"),
    Check("sa.retention", SA, {2: "7.1.4.3 c)", 3: "8.1.4.3 c)"}, audit_retention,
          "审计记录留存不少于六个月（《网络安全法》第二十一条）",
          "将审计日志保留期设为不少于 180 天；超期记录用 archive_audit 归档为签名压缩文件。"),
    Check("sa.process", SA, {3: "8.1.4.3 d)"}, audit_process_protection,
          "应对审计进程进行保护，防止未经授权的中断",
          "在 Celery beat 中配置 audit.tasks.verify_chain 定期任务并配置告警邮箱。"),
    Check("ip.minimal", IP, {2: "7.1.4.4 a)", 3: "8.1.4.4 a)"}, MANUAL,
          "应遵循最小安装的原则，仅安装需要的组件和应用程序",
          "核对服务器软件清单，卸载不需要的组件。"),
    Check("ip.services", IP, {2: "7.1.4.4 b)", 3: "8.1.4.4 b)"}, MANUAL,
          "应关闭不需要的系统服务、默认共享和高危端口",
          "端口扫描核对，仅开放 HTTPS 与必要的管理端口。"),
    Check("ip.terminals", IP, {2: "7.1.4.4 c)", 3: "8.1.4.4 c)"}, MANUAL,
          "应通过设定终端接入方式或网络地址范围对通过网络进行管理的管理终端进行限制",
          "在负载均衡或防火墙上限制管理页面的来源网段。"),
    Check("ip.input", IP, {2: "7.1.4.4 d)", 3: "8.1.4.4 d)"}, input_validation,
          "应提供数据有效性检验功能，保证通过人机接口输入或通过通信接口输入的内容符合系统设定要求",
          "生产环境关闭 DEBUG。"),
    Check("ip.vulns", IP, {2: "7.1.4.4 e)", 3: "8.1.4.4 e)"}, MANUAL,
          "应能发现可能存在的已知漏洞，并在经过充分测试评估后，及时修补漏洞",
          "定期进行漏洞扫描并记录修补情况。"),
    Check("ip.detect", IP, {3: "8.1.4.4 f)"}, MANUAL,
          "应能够检测到对重要节点进行入侵的行为，并在发生严重入侵事件时提供报警",
          "部署主机入侵检测并接入告警。"),
    Check("di.transit", DI, {2: "7.1.4.7", 3: "8.1.4.7 a)"}, tls_settings,
          "应采用校验技术（或密码技术）保证重要数据在传输过程中的完整性",
          "全站 HTTPS。"),
    Check("di.storage", DI, {3: "8.1.4.7 b)"}, storage_integrity,
          "应采用校验技术或密码技术保证重要数据在存储过程中的完整性",
          "为审计哈希链配置独立密钥 AUDIT_HMAC_KEY。"),
    Check("dc.transit", DC, {3: "8.1.4.8 a)"}, tls_settings,
          "应采用密码技术保证重要数据在传输过程中的保密性",
          "全站 HTTPS，启用 HSTS。"),
    Check("dc.storage", DC, {3: "8.1.4.8 b)"}, storage_confidentiality,
          "应采用密码技术保证重要数据在存储过程中的保密性",
          "使用 PBKDF2/Argon2 口令哈希，并配置独立的 FIELD_ENCRYPTION_KEY。"),
    Check("db.local", DB, {2: "7.1.4.8 a)", 3: "8.1.4.9 a)"}, backups_recent,
          "应提供重要数据的本地数据备份与恢复功能",
          "配置每日数据库备份，备份成功后更新 BACKUP_STATUS_FILE。"),
    Check("db.remote", DB, {2: "7.1.4.8 b)", 3: "8.1.4.9 b)"}, MANUAL,
          "应提供异地数据备份功能，利用通信网络将重要数据定时批量传送至备用场地",
          "将业务数据备份到第三数据中心并记录恢复演练。"),
    # db.redundancy (热冗余) is compute's: compute/compliance.py, from HA's configuration and its last drill.
    Check("ri.auth", RI, {2: "7.1.4.9", 3: "8.1.4.10 a)"}, residual_auth_info,
          "应保证鉴别信息所在的存储空间被释放或重新分配前得到完全清除",
          "使用服务端会话存储。"),
    # ri.data (存有敏感数据的存储空间) is compute's: compute/compliance.py, from what its drivers do.
    Check("pi.minimal", PI, {2: "7.1.4.10 a)", 3: "8.1.4.11 a)"}, MANUAL,
          "应仅采集和保存业务必需的用户个人信息",
          "核对用户字段，仅保留姓名、学号/工号等必需信息。"),
    Check("pi.access", PI, {2: "7.1.4.10 b)", 3: "8.1.4.11 b)"}, MANUAL,
          "应禁止未授权访问和非法使用用户个人信息",
          "核对各角色可见的个人信息范围。"),
    Check("am.analysis", AM, {2: "7.1.5.2 b)", 3: "8.1.5.2 b)"}, auditors_read_only,
          "应通过审计管理员对审计记录进行分析，并根据分析结果进行处理，包括根据安全审计策略对审计记录进行存储、管理和查询等",  # noqa: E501
          "保持审计角色只读，并定期检索分析审计日志。"),
    Check("cc.zone", CC, {3: "8.1.5.4 a)"}, MANUAL,
          "应划分出特定的管理区域，对分布在网络中的安全设备或安全组件进行管控",
          "为管理网络单独划分 VLAN 并限制访问。"),
    Check("cc.events", CC, {3: "8.1.5.4 d)"}, central_control,
          "应对分散在各个设备上的审计数据进行收集汇总和集中分析，并保证审计记录的留存时间符合法律法规要求",
          "配置定期校验任务与告警邮箱（SECURITY_ALERT_EMAILS）。"),
]
# fmt: on
