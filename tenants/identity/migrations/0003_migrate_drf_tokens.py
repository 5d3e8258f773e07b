"""DRF's single token per account becomes an ApiToken (issue #14.3), so scripts keep working after the upgrade.

A service account's token keeps not expiring; a person's token gets API_TOKEN_HOURS from now and
no second factor (a person whose roles need one asks for a new token with the one-time code).
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def carry_over(apps, schema_editor):
    token_model = apps.get_model("authtoken", "Token")
    api_token_model = apps.get_model("identity", "ApiToken")
    state_model = apps.get_model("identity", "AccountState")
    services = set(state_model.objects.filter(kind="service").values_list("user_id", flat=True))
    expires = timezone.now() + timedelta(hours=settings.API_TOKEN_HOURS)
    for token in token_model.objects.all():
        service = token.user_id in services
        api_token_model.objects.get_or_create(
            key_hash=hashlib.sha256(token.key.encode()).hexdigest(),
            defaults={
                "user_id": token.user_id,
                "name": "service" if service else "API",
                "kind": "service" if service else "person",
                "prefix": token.key[:8],
                "second_factor": service,
                "expires_at": None if service else expires,
            },
        )
    token_model.objects.all().delete()  # the keys were stored in clear; ApiToken keeps only their hash


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0002_api_tokens_per_device"),
        ("authtoken", "0003_tokenproxy"),
    ]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
