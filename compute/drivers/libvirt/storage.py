"""Storage pools and volumes as objects of their own: golden images imported and flattened, kept data disks."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import libvirt

from .. import xml as lx
from ..base import MIB, DriverError, ErrorCode, ImageInfo, PoolSpec, VolumeInfo, unsupported
from . import objects as lo
from .connection import Connection, is_test_driver


def _bad_image(message: str) -> DriverError:
    return DriverError(message, permanent=True, code=ErrorCode.BAD_IMAGE)


def _qemu_img_info(path: str, qemu_img: str) -> dict:
    """``qemu-img info`` of the file as JSON; BAD_IMAGE when qemu-img cannot read it."""
    try:
        proc = subprocess.run(
            [qemu_img, "info", "--force-share", "--output=json", path],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError as exc:
        raise DriverError("qemu-img is not installed", permanent=True, code=ErrorCode.UNSUPPORTED) from exc
    except subprocess.TimeoutExpired as exc:
        raise DriverError(f"qemu-img info timed out on {path}", permanent=False, code=ErrorCode.TIMEOUT) from exc
    if proc.returncode != 0:
        raise _bad_image(f"not a disk image: {proc.stderr.strip() or path}")
    return json.loads(proc.stdout)


def _refuse_unusable(path: str, info: dict) -> None:
    """A format other than qcow2 or raw, a backing file, corruption or a size too small for a disk."""
    fmt, size = info.get("format", ""), int(info.get("virtual-size", 0))
    if fmt not in ("qcow2", "raw"):
        raise _bad_image(f"{path}: format {fmt!r}, expected qcow2 or raw")
    if info.get("backing-filename"):
        raise _bad_image(f"{path} depends on a backing file; flatten it first")
    if info.get("format-specific", {}).get("data", {}).get("corrupt"):
        raise _bad_image(f"{path} is marked corrupt")
    # Any file reads as "raw"; anything under 1 MiB is no disk or ISO worth booting.
    if size < MIB:
        raise _bad_image(f"{path}: virtual size {size} bytes is too small for a disk image")


def _is_iso(path: str) -> bool:
    with open(path, "rb") as image:
        image.seek(0x8001)
        return image.read(5) == b"CD001"  # ISO 9660 volume descriptor


def check_image(path: str, *, qemu_img: str = "qemu-img") -> ImageInfo:
    """Format and size of an uploaded image file, by ``qemu-img info``; BAD_IMAGE if unusable.

    Runs where the file is (the portal host), before anything is sent to a hypervisor.
    """
    if not os.path.isfile(path):
        raise _bad_image(f"no such file: {path}")
    info = _qemu_img_info(path, qemu_img)
    _refuse_unusable(path, info)
    fmt, size = info["format"], int(info.get("virtual-size", 0))
    if fmt == "raw" and _is_iso(path):
        fmt = "iso"
    return ImageInfo(path=path, format=fmt, virtual_size_bytes=size, file_size_bytes=os.path.getsize(path))


def _upload(conn: libvirt.virConnect, vol: libvirt.virStorageVol, source_path: str) -> None:
    """Stream the file into the volume (works on a remote host too); a failed upload deletes the volume."""
    stream = conn.newStream(0)
    try:
        vol.upload(stream, 0, os.path.getsize(source_path), 0)
        with open(source_path, "rb") as src:
            stream.sendAll(lambda _st, nbytes, f: f.read(nbytes), src)
        stream.finish()
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        with contextlib.suppress(libvirt.libvirtError):
            vol.delete(0)
        raise


def _shared_pool_xml(spec: PoolSpec) -> str:
    root = ET.Element("pool", type=spec.kind)
    ET.SubElement(root, "name").text = spec.name
    if spec.kind == "netfs":
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "host", name=spec.source_host)
        ET.SubElement(source, "dir", path=spec.source_path)
        ET.SubElement(source, "format", type="nfs")
    ET.SubElement(ET.SubElement(root, "target"), "path").text = spec.path
    return ET.tostring(root, encoding="unicode")


def _refuse_other_pool(storage: libvirt.virStoragePool, spec: PoolSpec) -> None:
    root = ET.fromstring(storage.XMLDesc(0))
    path = root.findtext("target/path") or ""
    source = (root.find("source/host") is not None and root.find("source/host").get("name")) or ""
    if root.get("type") != spec.kind or path.rstrip("/") != spec.path.rstrip("/") or source != spec.source_host:
        raise DriverError(
            f"storage pool {spec.name!r} exists here as {root.get('type')} at {path!r}, "
            f"not {spec.kind} at {spec.path!r}",
            permanent=True,
            code=ErrorCode.EXISTS,
        )


class Storage(Connection):
    _qemu_img: str

    def pool_ensure(self, name: str, path: str) -> None:
        """A directory pool ``name`` at ``path``, defined, built, started and autostarted when missing."""
        with self._calls(f"cannot set up storage pool {name!r}") as conn:
            storage = lo.find_pool(conn, name)
            if storage is None:
                root = ET.Element("pool", type="dir")
                ET.SubElement(root, "name").text = name
                ET.SubElement(ET.SubElement(root, "target"), "path").text = path
                storage = conn.storagePoolDefineXML(ET.tostring(root, encoding="unicode"), 0)
                with contextlib.suppress(libvirt.libvirtError):  # the directory may exist already
                    storage.build(0)
            if not storage.isActive():
                storage.create(0)
            with contextlib.suppress(libvirt.libvirtError):  # the test driver has no autostart
                storage.setAutostart(1)

    def shared_pool_ensure(self, spec: PoolSpec) -> None:
        """The cluster's shared pool on this host: defined, started and autostarted when missing.

        A pool of that name defined otherwise (another path or source) is EXISTS: the host must
        see the same storage at the same path as the other hosts of its cluster.
        """
        with self._calls(f"cannot set up shared storage pool {spec.name!r}") as conn:
            storage = lo.find_pool(conn, spec.name)
            if storage is None:
                storage = conn.storagePoolDefineXML(_shared_pool_xml(spec), 0)
            else:
                _refuse_other_pool(storage, spec)
            if spec.kind == "dir":
                with contextlib.suppress(libvirt.libvirtError):  # the directory is there already
                    storage.build(0)
            if not storage.isActive():
                storage.create(0)
            with contextlib.suppress(libvirt.libvirtError):  # the test driver has no autostart
                storage.setAutostart(1)

    def volume_create(self, pool: str, volume_name: str, size_gib: int) -> VolumeInfo:
        """An empty qcow2 volume (sparse); an existing volume of that name is returned as it is."""
        with self._calls(f"cannot create volume {volume_name!r} in pool {pool!r}") as conn:
            storage = lo.pool(conn, pool)
            vol, _new = lo.empty_volume(storage, volume_name, size_gib)
            return lo.volume_info(storage, vol)

    def image_import(self, pool: str, volume_name: str, source_path: str) -> VolumeInfo:
        """Upload a checked qcow2/raw file into ``pool`` as a golden volume (streamed: works remotely too)."""
        image = check_image(source_path, qemu_img=self._qemu_img)
        fmt = "raw" if image.format == "iso" else image.format
        with self._calls(f"cannot import {source_path} into pool {pool!r}") as conn:
            if is_test_driver(conn):
                raise unsupported("volume upload", "libvirt's test driver")
            storage = lo.pool(conn, pool)
            lo.refuse_taken(storage, volume_name)
            vol_el = ET.Element("volume")
            ET.SubElement(vol_el, "name").text = volume_name
            ET.SubElement(vol_el, "capacity", unit="bytes").text = str(image.virtual_size_bytes)
            ET.SubElement(ET.SubElement(vol_el, "target"), "format", type=fmt)
            _upload(conn, storage.createXML(ET.tostring(vol_el, encoding="unicode"), 0), source_path)
            storage.refresh(0)
            return lo.volume_info(storage, lo.volume(storage, volume_name))

    def image_flatten(self, pool: str, overlay_volume: str, new_volume_name: str) -> VolumeInfo:
        """A standalone copy (no backing file) of an overlay, to publish as a new golden image.

        The VM using the overlay should be stopped, or the copy is not consistent.
        """
        with self._calls(f"cannot flatten {overlay_volume!r} in pool {pool!r}") as conn:
            storage = lo.pool(conn, pool)
            source = lo.volume(storage, overlay_volume)
            lo.refuse_taken(storage, new_volume_name)
            # createXMLFrom runs qemu-img convert, which reads through the backing chain.
            vol = storage.createXMLFrom(lx.volume_xml(new_volume_name, source.info()[1]), source, 0)
            return lo.volume_info(storage, vol)

    def volume_list(self, pool: str) -> list[VolumeInfo]:
        with self._calls(f"cannot list pool {pool!r}") as conn:
            storage = lo.pool(conn, pool)
            storage.refresh(0)
            return sorted((lo.volume_info(storage, v) for v in storage.listAllVolumes(0)), key=lambda v: v.name)

    def volume_delete(self, pool: str, volume_name: str) -> None:
        """Wipe and delete the volume (a volume already gone is not an error)."""
        with self._calls(f"cannot delete volume {volume_name!r}") as conn:
            vol = lo.find_volume(lo.pool(conn, pool), volume_name)
            if vol is not None:
                lo.wipe_and_delete(vol, wipe=not is_test_driver(conn))
