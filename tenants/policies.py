"""Approval policies: the steps and auto-approval rules a tenant's requests go through.

A tenant without a policy of its own inherits the nearest one up the tree. A child's own
policy may only be stricter than the one it inherits: it keeps every step the parent
requires (at a threshold no higher), may add steps, and its auto-approval rules stay
within a rule of the parent's for the same kind. No policy auto-approves quota increases
(a quota grows only by the decision of someone above the tenant: tenants.approvals).

A rule's maxima bound the amounts a request carries, resource by resource; 0 means "none of
it". IP addresses: the "ips" quota counts every address a tenant holds, and a desktop holds
one (its NIC) from its creation, so a request for N desktops carries N addresses. A rule's
max_ips is therefore never below its max_desktops: ``rule_normalised`` raises it to that
(an admin who allows 5 desktops and leaves IP addresses at 0 means 5 desktops, each with
its address), and what a rule allows beyond that is elastic IPs. Rules stored before the
desktops' addresses counted had max_desktops added to max_ips by migration 0006, so they
approve what they approved before.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Forbidden, InvalidInput
from tenants import permissions
from tenants.errors import TenantsError
from tenants.models import ApprovalPolicy, ApproverRole, AutoApprovalRule, PolicyStep, RequestKind, Tenant, User
from tenants.roles import PlatformRole

STEP_THRESHOLDS = ("above_desktops", "above_vcpu", "above_gpus", "above_cost")
RULE_MAXIMA = ("max_desktops", "max_vcpu", "max_ram_mib", "max_disk_gib", "max_gpus", "max_ips")


def rule_normalised(rule: dict) -> dict:
    """A rule as stored: at least one address per desktop it allows (see above)."""
    return {**rule, "max_ips": max(rule.get("max_ips") or 0, rule.get("max_desktops") or 0)}


def policy_for(tenant: Tenant) -> ApprovalPolicy | None:
    """The tenant's own policy, or the nearest one up the tree."""
    policies = ApprovalPolicy.objects.filter(tenant__path__in=tenant.ancestor_paths()).select_related("tenant")
    return max(policies, key=lambda p: len(p.tenant.path), default=None)


def inherited_policy(tenant: Tenant) -> ApprovalPolicy | None:
    """The policy a tenant's own must be stricter than: its parent's effective one."""
    return policy_for(tenant.parent) if tenant.parent_id else None


def _threshold_no_higher(child, parent) -> bool:
    """A child step's threshold is as strict as the parent's: unset (always applies) or not above it."""
    return child is None or (parent is not None and child <= parent)


def _step_kept(parent_step: PolicyStep, steps: list[dict]) -> bool:
    return any(
        s.get("approver_role") == parent_step.approver_role
        and all(_threshold_no_higher(s.get(f), getattr(parent_step, f)) for f in STEP_THRESHOLDS)
        for s in steps
    )


def _rule_within(rule: dict, parent_rules: list[AutoApprovalRule]) -> bool:
    return any(
        (not p.kind or p.kind == rule.get("kind")) and all((rule.get(f) or 0) <= getattr(p, f) for f in RULE_MAXIMA)
        for p in parent_rules
    )


def _check_rules(rules: list[dict], parent: ApprovalPolicy | None) -> None:
    parent_rules = list(parent.rules.filter(is_active=True)) if parent is not None else None
    for rule in rules:
        if rule.get("kind") == RequestKind.QUOTA_INCREASE:
            raise InvalidInput(
                _("配额调整不能自动审批：配额只能由上级批准增加。"),
                code=TenantsError.POLICY_NOT_STRICTER,
                detail={"rule": rule.get("name"), "kind": rule.get("kind")},
            )
        if parent_rules is not None and not _rule_within(rule, parent_rules):
            raise InvalidInput(
                _("自动审批规则“%(name)s”比上级策略宽松：下级只能降低自动审批的上限。") % {"name": rule.get("name")},
                code=TenantsError.POLICY_NOT_STRICTER,
                detail={"rule": rule.get("name")},
            )


def _check_stricter(steps: list[dict], rules: list[dict], parent: ApprovalPolicy | None) -> None:
    """Refuse a policy that would let a request through more easily than the inherited one."""
    for parent_step in parent.steps.all() if parent is not None else []:
        if not _step_kept(parent_step, steps):
            raise InvalidInput(
                _("上级策略要求“%(role)s”审批，下级策略不能去掉这一步或提高它的门槛。")
                % {"role": parent_step.get_approver_role_display()},
                code=TenantsError.POLICY_NOT_STRICTER,
                detail={"step": parent_step.approver_role},
            )
    _check_rules(rules, parent)


def _check_policy_input(actor, tenant: Tenant, steps: list[dict]) -> None:
    if actor is not None and not (
        permissions.manages_tenant(actor, tenant) or permissions.is_platform(actor, PlatformRole.SYSTEM_ADMIN)
    ):
        raise Forbidden(_("您不能修改该租户的审批策略。"), code=TenantsError.POLICY_FORBIDDEN)
    if not steps:
        raise InvalidInput(_("审批策略至少需要一个步骤。"), code=TenantsError.POLICY_NEEDS_STEP)
    for step in steps:
        if step.get("approver_role") not in ApproverRole.values:
            raise InvalidInput(
                _("未知审批人：%(role)s") % {"role": step.get("approver_role")}, code=TenantsError.UNKNOWN_ROLE
            )


def policy_set(
    *, actor: User | None, tenant: Tenant, name: str, steps: list[dict], rules: list[dict]
) -> ApprovalPolicy:
    """Replace a tenant's policy: `steps` [{approver_role, above_desktops, ...}], `rules` [{name, kind, max_*}]
    (max_ram_mib in MiB; max_ips raised to max_desktops: rule_normalised).

    Refused (400 policy_not_stricter) when it is less strict than the policy the tenant inherits."""
    _check_policy_input(actor, tenant, steps)
    rules = [rule_normalised(rule) for rule in rules]
    _check_stricter(steps, rules, inherited_policy(tenant))
    with transaction.atomic():
        policy, _created = ApprovalPolicy.objects.update_or_create(tenant=tenant, defaults={"name": name})
        policy.steps.all().delete()
        policy.rules.all().delete()
        PolicyStep.objects.bulk_create(PolicyStep(policy=policy, order=i, **s) for i, s in enumerate(steps, start=1))
        AutoApprovalRule.objects.bulk_create(AutoApprovalRule(policy=policy, **r) for r in rules)
        event_record(
            action=Action.APPROVAL_POLICY_CHANGED,
            actor=actor,
            target=policy,
            tenant=tenant,
            detail={"steps": [s["approver_role"] for s in steps], "rules": [r["name"] for r in rules]},
        )
    return policy
