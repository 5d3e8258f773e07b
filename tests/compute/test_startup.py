"""What compute sets up when Django starts (ComputeConfig.ready), not as a side effect of some import."""

import importlib
import sys

from network import hooks


def test_networks_hooks_reach_compute_once_django_has_started():
    from compute.networking import hooks as handlers

    assert handlers._on_nic_changed in hooks._handlers["nic_changed"]
    assert handlers._on_forwarding_changed in hooks._handlers["forwarding_changed"]


def test_importing_the_network_orchestration_registers_nothing(monkeypatch):
    import compute

    registered = []
    monkeypatch.setattr(hooks, "register", lambda event, handler: registered.append(event))
    monkeypatch.setattr(compute, "networking", compute.networking)  # the fresh import below replaces it
    for name in [m for m in sys.modules if m == "compute.networking" or m.startswith("compute.networking.")]:
        monkeypatch.delitem(sys.modules, name)

    importlib.import_module("compute.networking")

    assert registered == []
