"""A VM's snapshot tree, read and changed by name (vSphere addresses snapshots by reference)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from ..base import DriverError, ErrorCode, PowerState, SnapshotInfo
from .inventory import Inventory
from .vminfo import POWER


def _walk(nodes: Iterable, parent: str = "") -> Iterable[tuple[Any, str]]:
    """(node, parent name) for every node of the tree, parents first."""
    for node in nodes or []:
        yield node, parent
        yield from _walk(node.childSnapshotList, node.name)


def _snapshot_info(node: Any, parent: str, current: Any) -> SnapshotInfo:
    return SnapshotInfo(
        name=node.name,
        created_at=node.createTime.astimezone(UTC) if node.createTime else None,
        description=node.description or "",
        parent=parent,
        current=current is not None and node.snapshot._moId == current._moId,
        power_state=POWER.get(str(node.state), PowerState.UNKNOWN),
    )


class Snapshots(Inventory):
    def _snapshots(self, si: Any, ref: Any) -> tuple[list[tuple[Any, str]], Any]:
        info = self._props(si, ref, ["snapshot"]).get("snapshot")
        if info is None:
            return [], None
        return list(_walk(info.rootSnapshotList)), info.currentSnapshot

    def _snapshot_node(self, si: Any, name: str, snapshot: str) -> Any:
        nodes, _current = self._snapshots(si, self._vm_ref(si, name))
        for node, _parent in nodes:
            if node.name == snapshot:
                return node
        raise DriverError(f"snapshot {snapshot!r} of VM {name!r} not found", permanent=True, code=ErrorCode.NOT_FOUND)

    def snapshot_create(self, name: str, snapshot: str, description: str = "") -> SnapshotInfo:
        def create(si: Any) -> SnapshotInfo:
            ref = self._vm_ref(si, name)
            nodes, _ = self._snapshots(si, ref)
            if any(node.name == snapshot for node, _p in nodes):
                raise DriverError(
                    f"VM {name!r} already has a snapshot {snapshot!r}", permanent=True, code=ErrorCode.EXISTS
                )
            task = ref.CreateSnapshot_Task(name=snapshot, description=description, memory=False, quiesce=False)
            self._wait(si, task, f"cannot snapshot VM {name!r}")
            nodes, current = self._snapshots(si, ref)
            node, parent = next((n, p) for n, p in nodes if n.name == snapshot)
            return _snapshot_info(node, parent, current)

        return self._call(f"cannot snapshot VM {name!r}", create)

    def snapshot_list(self, name: str) -> list[SnapshotInfo]:
        def read(si: Any) -> list[SnapshotInfo]:
            nodes, current = self._snapshots(si, self._vm_ref(si, name))
            return [_snapshot_info(n, p, current) for n, p in nodes]

        return self._call(f"cannot list snapshots of VM {name!r}", read)

    def snapshot_revert(self, name: str, snapshot: str) -> None:
        what = f"cannot revert VM {name!r} to {snapshot!r}"

        def revert(si: Any) -> None:
            node = self._snapshot_node(si, name, snapshot)
            self._wait(si, node.snapshot.RevertToSnapshot_Task(), what)

        self._call(what, revert)

    def snapshot_delete(self, name: str, snapshot: str) -> None:
        what = f"cannot delete snapshot {snapshot!r} of VM {name!r}"

        def delete(si: Any) -> None:
            node = self._snapshot_node(si, name, snapshot)
            self._wait(si, node.snapshot.RemoveSnapshot_Task(removeChildren=False), what)

        self._call(what, delete)
