"""A flavor's memory reads the same everywhere: the wizard says 256 MiB for tiny, not 1 GiB."""

import pytest

from common.units import memory_label


@pytest.mark.parametrize(("mib", "text"), [(256, "256 MiB"), (1024, "1 GiB"), (1536, "1.5 GiB"), (4096, "4 GiB")])
def test_memory_label(mib, text):
    assert memory_label(mib) == text


def test_the_wizard_shows_the_flavors_own_memory():
    from compute.models import Flavor
    from portal.wizard import flavor_label

    label = flavor_label(Flavor(name="tiny", vcpus=1, memory_mib=256, disk_gib=10))

    assert "256 MiB 内存" in label and "1 GiB" not in label
