"""HA without a testbed: the host's state machine, detection and fencing through a real IPMI BMC simulator
(pyghmi's server), a failed fencing restarting nothing, the admin's clear, settings and the BMC's secret.
The end-to-end drill on real hosts is tests/testbed/test_ha.py."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actions import Action
from audit.models import AuditEvent
from common.errors import Conflict, Forbidden, InvalidInput
from compute import services
from compute.errors import ComputeError
from compute.ha import detection, states
from compute.ha import round as ha_round_module
from compute.ha import services as ha_services
from compute.models import ClusterHa, Desktop, HaIncident, HaState, Host
from compute.placement import place
from tests.harness.bmc import bmc_for

pytestmark = pytest.mark.django_db
T0 = timezone.now()


def _at(seconds: float):
    return T0 + timedelta(seconds=seconds)


# --- the state machine ---------------------------------------------------------------------------


def test_a_host_seen_by_either_signal_is_not_silent_and_one_never_seen_is_not_judged():
    assert states.last_seen(_at(0), _at(10)) == _at(10)
    assert states.last_seen(None, _at(3)) == _at(3)
    assert not states.silent(_at(10), now=_at(24), detection=15)
    assert states.silent(_at(10), now=_at(25), detection=15)
    assert not states.silent(None, now=_at(1000), detection=15)


@pytest.mark.parametrize(
    ("state", "is_silent", "since", "expected"),
    [
        ("ok", False, None, states.Step.NOTHING),
        ("ok", True, None, states.Step.SUSPECT),
        ("suspect", True, 0, states.Step.FENCE),
        ("suspect", False, 0, states.Step.RECOVER),
        # once fencing began the host stays out, whatever it answers, until an admin clears it
        ("fencing", False, 0, states.Step.NOTHING),
        ("fencing", True, -states.FENCING_CLAIM_SECONDS, states.Step.FENCE),  # the round that claimed it died
        ("fence_failed", False, 0, states.Step.NOTHING),
        ("fence_failed", False, -states.FENCE_RETRY_SECONDS, states.Step.FENCE),
        ("fenced", False, 0, states.Step.RESTART),
    ],
)
def test_the_host_state_machine(state, is_silent, since, expected):
    assert states.step(state, is_silent=is_silent, since=None if since is None else _at(since), now=_at(0)) == expected


def test_only_a_host_ha_is_done_with_may_be_cleared():
    assert [s for s in HaState.values if states.may_clear(s)] == ["suspect", "fenced", "fence_failed"]


# --- rounds on test:///default hosts --------------------------------------------------------------


@dataclass
class _NoBed:
    """A "host" for the BMC simulator whose power-off kills nothing (no such testbed)."""

    name: str = "nohost"
    config: dict = field(default_factory=lambda: {"TESTBED_PREFIX": "ccnone", "TESTBED_HOSTS": "nohost:none"})


def _hosts(scenario):
    hosts = [
        services.host_add(
            actor=scenario.sysadmin,
            name=f"n{i}",
            uri="test:///default",
            site="east",
            cluster="east-general",
            address=f"10.9.0.{i}",
            domain_type="qemu",
            storage_pool="shared",
            shared_storage=True,
        )
        for i in (1, 2)
    ]
    Host.objects.update(probed_at=timezone.now())
    return hosts


def _silence(monkeypatch, host, seconds=60):
    """``host`` stopped answering ``seconds`` ago: its probes fail, its last signals are that old."""
    real = detection._probe
    monkeypatch.setattr(detection, "_probe", lambda h: False if h.pk == host.pk else real(h))
    Host.objects.filter(pk=host.pk).update(probed_at=timezone.now() - timedelta(seconds=seconds), heartbeat_at=None)


def _desktop(scenario, host, **fields):
    return Desktop.objects.create(
        name="d",
        vm_name=f"cc-ha-{Desktop.objects.count()}",
        tenant=scenario.tenant_a,
        endpoint=host.endpoint,
        host=host,
        state=Desktop.State.RUNNING,
        **fields,
    )


def test_a_silent_host_without_a_bmc_is_not_fenced_and_none_of_its_desktops_moves(scenario, monkeypatch):
    n1, _n2 = _hosts(scenario)
    desktop = _desktop(scenario, n1)
    _silence(monkeypatch, n1)

    report = ha_round_module.ha_round()

    n1.refresh_from_db()
    assert n1.ha_state == HaState.FENCE_FAILED
    assert "主机 n1 无法隔离：桌面未重启" in n1.ha_reason
    assert report["fenced"] == [{"host": "n1", "fenced": False, "error": n1.ha_reason.split("（", 1)[1][:-1]}]
    assert report["restarted"] == []
    desktop.refresh_from_db()
    assert desktop.endpoint_id == n1.endpoint_id
    incident = HaIncident.objects.get(host=n1)
    assert incident.outcome == HaIncident.Outcome.FENCE_FAILED and incident.fenced_at is None
    actions = list(AuditEvent.objects.filter(object_id=str(n1.pk)).values_list("action", flat=True))
    assert Action.HA_HOST_SUSPECT in actions and Action.HA_FENCE_FAILED in actions
    # a failed host takes no new desktop
    assert Host.objects.filter(ha_state=HaState.OK).count() == 1


def test_a_host_that_answers_again_before_fencing_is_ok_and_one_that_is_silent_less_long_is_left(scenario):
    n1, _n2 = _hosts(scenario)
    ha_services.host_suspect(host_id=n1.pk, seen=_at(-20), now=_at(0))
    ha_round_module.ha_round()  # test:///default answers the probe
    n1.refresh_from_db()
    assert n1.ha_state == HaState.OK
    assert HaIncident.objects.get(host=n1).outcome == HaIncident.Outcome.RECOVERED


def test_a_host_is_fenced_through_its_ipmi_bmc_and_stays_out_until_an_admin_clears_it(scenario, monkeypatch):
    n1, n2 = _hosts(scenario)
    with bmc_for(_NoBed()) as bmc:
        ha_services.host_bmc_set(
            actor=scenario.sysadmin,
            host=n1,
            address=bmc.address,
            port=bmc.port,
            username=bmc.username,
            password=bmc.password,
        )
        n1.refresh_from_db()
        assert bmc.password not in n1.bmc_password_encrypted and n1.bmc_password == bmc.password
        ClusterHa.objects.create(cluster=n1.endpoint.cluster, detection_seconds=30)
        _silence(monkeypatch, n1, seconds=20)
        ha_round_module.ha_round()
        n1.refresh_from_db()
        assert n1.ha_state == HaState.OK  # 20 s silent, the cluster waits 30 s

        _silence(monkeypatch, n1, seconds=31)
        report = ha_round_module.ha_round()
    assert report["fenced"] == [{"host": "n1", "fenced": True, "error": ""}]
    n1.refresh_from_db()
    assert n1.ha_state == HaState.FENCED
    assert HaIncident.objects.get(host=n1).outcome == HaIncident.Outcome.RESTARTED  # nothing on it to restart
    monkeypatch.setattr(detection, "_probe", lambda h: True)  # it answers again: still fenced
    ha_round_module.ha_round()
    n1.refresh_from_db()
    assert n1.ha_state == HaState.FENCED
    with pytest.raises(InvalidInput):
        place(
            flavor=services.flavor_create(actor=scenario.sysadmin, name="f", vcpus=1, memory_mib=1, disk_gib=1),
            image_version=None,
            endpoint=n1.endpoint,
        )

    with pytest.raises(Forbidden):
        ha_services.host_ha_clear(actor=scenario.teacher, host=n1)
    ha_services.host_ha_clear(actor=scenario.sysadmin, host=n1)
    n1.refresh_from_db()
    assert n1.ha_state == HaState.OK
    with pytest.raises(Conflict) as excinfo:
        ha_services.host_ha_clear(actor=scenario.sysadmin, host=n1)
    assert excinfo.value.code == ComputeError.HA_NOTHING_TO_CLEAR
    assert AuditEvent.objects.filter(action=Action.HA_HOST_CLEARED, object_id=str(n1.pk)).count() == 1
    assert n2.ha_state == HaState.OK


def test_a_bmc_that_refuses_the_power_off_is_a_failed_fencing(scenario, monkeypatch):
    n1, _n2 = _hosts(scenario)
    desktop = _desktop(scenario, n1)
    with bmc_for(_NoBed(), refuse_off=True) as bmc:
        ha_services.host_bmc_set(
            actor=None, host=n1, address=bmc.address, port=bmc.port, username=bmc.username, password=bmc.password
        )
        _silence(monkeypatch, n1)
        ha_round_module.ha_round()
    n1.refresh_from_db()
    assert n1.ha_state == HaState.FENCE_FAILED and "BMC" in n1.ha_reason
    desktop.refresh_from_db()
    assert desktop.endpoint_id == n1.endpoint_id


def test_ha_settings_are_validated_and_audited(scenario):
    n1, _n2 = _hosts(scenario)
    cluster = n1.endpoint.cluster
    with pytest.raises(InvalidInput):
        ha_services.ha_settings_update(
            actor=scenario.sysadmin, cluster=cluster, enabled=True, detection_seconds=2, fencing="ipmi"
        )
    with pytest.raises(Forbidden):
        ha_services.ha_settings_update(
            actor=scenario.teacher, cluster=cluster, enabled=False, detection_seconds=None, fencing="ipmi"
        )
    ha = ha_services.ha_settings_update(
        actor=scenario.sysadmin, cluster=cluster, enabled=False, detection_seconds=20, fencing="ipmi"
    )
    assert (ha.enabled, ha.detection) == (False, 20)
    assert list(detection.ha_hosts()) == []  # HA off: nobody is watched
    assert AuditEvent.objects.filter(action=Action.HA_SETTINGS_CHANGED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_rounds_at_once_fence_a_host_once(scenario, monkeypatch):
    """Beat may hand the tick to two workers: the host's row lock lets one round claim it, the other skips."""
    import threading

    from django.db import connection

    n1, _n2 = _hosts(scenario)
    with bmc_for(_NoBed()) as bmc:
        ha_services.host_bmc_set(
            actor=None, host=n1, address=bmc.address, port=bmc.port, username=bmc.username, password=bmc.password
        )
        _silence(monkeypatch, n1)
        barrier = threading.Barrier(2)
        reports = []

        def worker():
            try:
                barrier.wait()
                reports.append(ha_round_module.ha_round())
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(reports) == 2
    assert sorted(len(r["fenced"]) for r in reports) == [0, 1]
    assert Host.objects.get(pk=n1.pk).ha_state == HaState.FENCED
    assert HaIncident.objects.filter(host=n1).count() == 1
    assert AuditEvent.objects.filter(action=Action.HA_HOST_FENCED, object_id=str(n1.pk)).count() == 1
    assert AuditEvent.objects.filter(action=Action.HA_HOST_SUSPECT, object_id=str(n1.pk)).count() == 1
