"""Internal snapshots of a domain: they live inside its qcow2 overlay, so there are no extra files to track."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import libvirt

from .. import xml as lx
from ..base import DriverError, ErrorCode, PowerState, SnapshotInfo
from . import objects as lo
from .connection import Connection

_SNAPSHOT_STATES = {"running": PowerState.RUNNING, "shutoff": PowerState.STOPPED, "paused": PowerState.PAUSED}


def _from_epoch(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _snapshot_info(snap: libvirt.virDomainSnapshot) -> SnapshotInfo:
    root = lx.parse(snap.getXMLDesc(0))
    return SnapshotInfo(
        name=root.findtext("name", ""),
        created_at=_from_epoch(root.findtext("creationTime")),
        description=root.findtext("description", ""),
        parent=root.findtext("parent/name", ""),
        current=bool(snap.isCurrent(0)),
        power_state=_SNAPSHOT_STATES.get(root.findtext("state", ""), PowerState.UNKNOWN),
    )


def _in_order(snaps: list[SnapshotInfo]) -> list[SnapshotInfo]:
    """Oldest first; creation times have one-second resolution, so parents still come before children."""
    parents = {s.name: s.parent for s in snaps}

    def depth(snap: SnapshotInfo) -> int:
        level, parent = 0, snap.parent
        while parent and level < len(parents):
            level, parent = level + 1, parents.get(parent, "")
        return level

    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(snaps, key=lambda s: (s.created_at or epoch, depth(s), s.name))


class Snapshots(Connection):
    def snapshot_create(self, name: str, snapshot: str, description: str = "") -> SnapshotInfo:
        with self._calls(f"cannot snapshot VM {name!r}") as conn:
            dom = lo.domain(conn, name)
            if snapshot in dom.snapshotListNames(0):
                raise DriverError(
                    f"VM {name!r} already has a snapshot {snapshot!r}", permanent=True, code=ErrorCode.EXISTS
                )
            root = ET.Element("domainsnapshot")
            ET.SubElement(root, "name").text = snapshot
            if description:
                ET.SubElement(root, "description").text = description
            snap = dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), 0)
            return _snapshot_info(snap)

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        with self._calls(f"cannot list snapshots of VM {name!r}") as conn:
            return _in_order([_snapshot_info(s) for s in lo.domain(conn, name).listAllSnapshots(0)])

    def snapshot_revert(self, name: str, snapshot: str) -> None:
        with self._calls(f"cannot revert VM {name!r} to {snapshot!r}") as conn:
            dom = lo.domain(conn, name)
            dom.revertToSnapshot(lo.snapshot(dom, snapshot), 0)

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        with self._calls(f"cannot delete snapshot {snapshot!r} of VM {name!r}") as conn:
            lo.snapshot(lo.domain(conn, name), snapshot).delete(0)
