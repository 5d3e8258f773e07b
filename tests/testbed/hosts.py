"""Helpers of the testbed tests: a testbed host added as a compute node, a disk-less QEMU domain on a host."""

import io
import json
import uuid

from django.core.management import call_command


def add_host(host, *, name=None, shared_storage_pool: str = "") -> dict:
    """``manage.py host_add`` for a testbed host (its site, cluster ``<site>-general``, TCG); with
    ``shared_storage_pool`` the desktop pool is that one, on the storage every host mounts."""
    out = io.StringIO()
    pool = ["--storage-pool", shared_storage_pool, "--shared-storage"] if shared_storage_pool else []
    call_command(
        "host_add",
        "--name",
        name or host.name,
        "--uri",
        host.uri,
        "--site",
        host.site,
        "--cluster",
        f"{host.site}-general",
        "--domain-type",
        "qemu",
        "--json",
        *pool,
        stdout=out,
    )
    return json.loads(out.getvalue())


def domain_xml(name: str) -> str:
    """A disk-less TCG domain (SeaBIOS idles on its VNC display); VNC where the host's qemu.conf says."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <graphics type='vnc' autoport='yes' passwd='{uuid.uuid4().hex[:8]}'/><video><model type='vga'/></video>
  </devices>
</domain>"""
