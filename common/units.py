"""One way to show sizes, so every page writes a flavor's memory the same: 256 MiB, 1.5 GiB, 4 GiB."""

from decimal import Decimal


def memory_label(mib: int) -> str:
    """Memory in MiB below 1 GiB, otherwise in GiB (to at most one decimal, exact when whole)."""
    if mib < 1024:
        return f"{mib} MiB"
    gib = (Decimal(mib) / 1024).quantize(Decimal("0.1")).normalize()
    return f"{gib:f} GiB"
