"""`{% load units %}{{ flavor.memory_mib|memory }}`: memory written the one way every page writes it
(common.units.memory_label: 256 MiB, 1 GiB, 1.5 GiB), so a flavor, a desktop, a quota and a request agree."""

from django import template

from common.units import memory_label

register = template.Library()


@register.filter
def memory(mib):
    """MiB as a label; anything that is not a number is shown as it is (an empty cell stays empty)."""
    if mib is None or mib == "":
        return ""
    try:
        return memory_label(int(mib))
    except (TypeError, ValueError):
        return mib
