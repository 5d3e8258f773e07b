# The "ips" quota counts every address a tenant holds, the desktops' NIC addresses too (billing meters
# them as IP-hours), not only elastic IPs:
# - each live desktop reservation holds one address (a desktop has one NIC), and every quota's ips
#   counters are summed again from the live reservations, as tenants.quotas.quota_recount does;
# - an auto-approval rule's max_ips grows by its max_desktops, so that it approves what it approved
#   before (a request for N desktops now carries N addresses; see tenants.policies).

from django.db import migrations
from django.db.models import F, Sum

DESKTOP_REASONS = ("desktop", "imported desktop")


def _live(Reservation, quota):
    live = Reservation.objects.exclude(state="released")
    if quota.scope == "course":
        return live.filter(course_id=quota.course_id)
    if quota.scope == "user":
        return live.filter(tenant_id=quota.tenant_id, user_id=quota.user_id)
    return live.filter(tenant__path__startswith=quota.tenant.path)


def _recount_ips(apps):
    Quota = apps.get_model("tenants", "Quota")
    Reservation = apps.get_model("tenants", "Reservation")
    for quota in Quota.objects.select_related("tenant"):
        live = _live(Reservation, quota)
        quota.reserved_ips = live.filter(state="reserved").aggregate(n=Sum("ips"))["n"] or 0
        quota.used_ips = live.filter(state="committed").aggregate(n=Sum("ips"))["n"] or 0
        quota.save(update_fields=["reserved_ips", "used_ips"])


def forwards(apps, schema_editor):
    Reservation = apps.get_model("tenants", "Reservation")
    AutoApprovalRule = apps.get_model("tenants", "AutoApprovalRule")
    Reservation.objects.exclude(state="released").filter(reason__in=DESKTOP_REASONS, ips=0).update(ips=1)
    _recount_ips(apps)
    AutoApprovalRule.objects.update(max_ips=F("max_ips") + F("max_desktops"))


def backwards(apps, schema_editor):
    Reservation = apps.get_model("tenants", "Reservation")
    AutoApprovalRule = apps.get_model("tenants", "AutoApprovalRule")
    Reservation.objects.exclude(state="released").filter(reason__in=DESKTOP_REASONS).update(ips=0)
    _recount_ips(apps)
    for rule in AutoApprovalRule.objects.all():
        rule.max_ips = max(0, rule.max_ips - rule.max_desktops)
        rule.save(update_fields=["max_ips"])


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_ram_in_mib"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
