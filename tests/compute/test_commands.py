"""Operator commands of compute (CONTRACT.md): endpoint_add, reconcile --json."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from compute.models import Endpoint


def test_endpoint_add_registers_a_checked_endpoint(db):
    out = StringIO()
    call_command(
        "endpoint_add",
        "--name",
        "lab1",
        "--kind",
        "libvirt",
        "--url",
        "test:///default",
        "--site",
        "east",
        "--password",
        "secret-pw",
        "--json",
        stdout=out,
    )

    result = json.loads(out.getvalue())
    assert result == {"name": "lab1", "kind": "libvirt", "url": "test:///default", "site": "east", "status": "ok"}
    endpoint = Endpoint.objects.get(name="lab1")
    assert endpoint.site.slug == "east"
    assert endpoint.hosts.count() == 1
    assert "secret-pw" not in endpoint.password_encrypted and endpoint.password == "secret-pw"


def test_endpoint_add_fails_clearly_when_the_hypervisor_cannot_be_reached(db):
    with pytest.raises(CommandError, match="endpoint_unreachable"):
        call_command(
            "endpoint_add",
            "--name",
            "dead",
            "--kind",
            "libvirt",
            "--url",
            "qemu+tcp://127.0.0.1:1/system",
            stdout=StringIO(),
        )
    assert not Endpoint.objects.exists()


def test_reconcile_json_has_the_contract_keys(db):
    out = StringIO()
    call_command("reconcile", "--json", stdout=out)

    assert {"drift_fixed", "missing", "orphans"} <= set(json.loads(out.getvalue()))
