"""Fixtures of the testbed tests."""

import contextlib
import uuid
from xml.etree import ElementTree as ET

import libvirt
import pytest

from tests.testbed.hosts import domain_xml


@pytest.fixture
def remote_domain(testbed):
    """A running QEMU domain on h3 (site west): (host, domain name, its VNC port)."""
    host = testbed["h3"]
    conn = host.connect()
    name = f"cc-tb-{uuid.uuid4().hex[:8]}"
    dom = conn.defineXML(domain_xml(name))
    dom.create()
    try:
        port = int(ET.fromstring(dom.XMLDesc(0)).find("devices/graphics").get("port"))
        yield host, name, port
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        dom.undefine()
        conn.close()
