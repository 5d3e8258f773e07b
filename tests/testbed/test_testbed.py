"""The multi-host testbed: libvirt hosts in namespaces of their own, reached over qemu+tcp from here.

Everything later work builds on (hosts, host agents, VXLAN, live migration, HA) assumes what
these tests check: a host's QEMU, VNC, dnsmasq and bridges are that host's alone, the hosts
reach each other, the broker and the database, and `down` leaves nothing behind.
"""

import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest
from django.conf import settings

from tests.harness.testbed import bed_config, bring_down, bring_up

pytestmark = [pytest.mark.libvirt, pytest.mark.testbed]

VNC_PASSWORD = "tb-pass"
STOCK_FILTERS = {p.stem for p in Path("/usr/share/libvirt/nwfilter").glob("*.xml")}


def domain_xml(name: str, listen: str | None = None, disk: str = "") -> str:
    """TCG; without a disk SeaBIOS idles, which is all a host needs to show it runs QEMU.

    Without `listen`, VNC listens where the host's qemu.conf says: its management address.
    """
    listen_attr = f" listen='{listen}'" if listen else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>{disk}<graphics type='vnc' autoport='yes'{listen_attr} passwd='{VNC_PASSWORD}'/></devices>
</domain>"""


def network_xml(name: str) -> str:
    return f"""<network>
  <name>{name}</name>
  <bridge name='tbbr0'/>
  <ip address='192.168.213.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.213.10' end='192.168.213.20'/></dhcp>
  </ip>
</network>"""


# Run inside a host: connect to ADDRESS PORT, print what the server says first, or "refused".
PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as sock:
        print(sock.recv(64).decode())
except ConnectionRefusedError:
    print("refused")
"""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def vnc_security_types(address: str, port: int) -> tuple[bytes, list[int]]:
    """The RFB banner and the security types QEMU offers once we answer with the same version."""
    with socket.create_connection((address, port), timeout=5) as sock:
        banner = sock.recv(12)
        sock.sendall(b"RFB 003.008\n")
        count = sock.recv(1)[0]
        return banner, list(sock.recv(count))


@pytest.fixture(scope="module")
def domains(testbed):
    """One running QEMU domain on every host: host name -> (domain name, live XML)."""
    name = f"tb-probe-{uuid.uuid4().hex[:6]}"
    conns, made = [], {}
    try:
        for host in testbed:
            conn = host.connect()
            conns.append(conn)
            dom = conn.defineXML(domain_xml(name, host.address))
            dom.create()
            made[host.name] = (name, dom.XMLDesc())
        yield made
    finally:
        # In parallel: destroying a QEMU takes libvirt ~1.6 s.
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda conn: remove_domain(conn, name), conns))


def remove_domain(conn, name: str) -> None:
    for dom in conn.listAllDomains():
        if dom.name() == name:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()


def test_hosts_are_on_two_sites_and_each_answers_with_its_own_hostname_and_uuid(testbed):
    assert {h.name: h.site for h in testbed} == {"h1": "east", "h2": "east", "h3": "west"}
    assert [h.netns for h in testbed] == ["cc-h1", "cc-h2", "cc-h3"]
    uuids = set()
    for host in testbed:
        conn = host.connect()
        try:
            assert conn.getHostname() == host.name
            caps = ET.fromstring(conn.getCapabilities())
            uuids.add(caps.findtext("host/uuid"))
            guest_domains = {d.get("type") for d in caps.iterfind("guest/arch[@name='x86_64']/domain")}
            assert "qemu" in guest_domains
        finally:
            conn.close()
    # Live migration refuses a destination with the source's UUID.
    assert len(uuids) == 3


def test_a_host_has_none_of_this_machines_domains_networks_or_filters(testbed):
    for host in testbed:
        conn = host.connect()
        try:
            assert [d.name() for d in conn.listAllDomains() if not d.name().startswith("tb-")] == []
            assert [n.name() for n in conn.listAllNetworks() if not n.name().startswith("tb-")] == []
            assert set(conn.listNWFilters()) == STOCK_FILTERS
        finally:
            conn.close()


def test_a_domain_on_each_host_runs_inside_that_hosts_network_namespace(testbed, domains):
    for host in testbed:
        name, _ = domains[host.name]
        # libvirt's pid file, under the host's own /run/libvirt.
        pid = int(host.run("cat", f"/run/libvirt/qemu/{name}.pid").stdout)
        assert pid in host.pids()
        assert f"guest={name}" in Path(f"/proc/{pid}/cmdline").read_text()
        assert all(pid not in other.pids() for other in testbed if other is not host)
    assert not Path(f"/run/libvirt/qemu/{name}.pid").exists()


def test_each_domains_vnc_answers_on_its_hosts_management_address_behind_a_password(testbed, domains):
    for host in testbed:
        graphics = ET.fromstring(domains[host.name][1]).find("devices/graphics")
        assert graphics.get("listen") == host.address
        port = int(graphics.get("port"))
        banner, types = vnc_security_types(host.address, port)
        assert banner == b"RFB 003.008\n"
        assert types == [2]  # VNC authentication only: never "none"
        # Not on the data network: another host gets a refusal there.
        other = next(h for h in testbed if h is not host)
        assert other.run("python3", "-c", PROBE, host.data_address, str(port)).stdout.strip() == "refused"


def test_two_hosts_run_the_same_network_side_by_side_and_a_third_sees_neither(testbed):
    h1, h2, h3 = testbed.hosts
    name = f"tb-net-{uuid.uuid4().hex[:6]}"
    conns = [h1.connect(), h2.connect(), h3.connect()]
    try:
        nets = [conn.networkCreateXML(network_xml(name)) for conn in conns[:2]]
        assert all(net.isActive() for net in nets)
        assert name not in conns[2].listNetworks()
        for host in (h1, h2):
            subprocess.run(["ip", "-n", host.netns, "link", "show", "tbbr0"], check=True, capture_output=True)
            dnsmasq = int(host.run("cat", f"/run/libvirt/network/{name}.pid").stdout)
            assert dnsmasq in host.pids()
        assert subprocess.run(["ip", "link", "show", "tbbr0"], capture_output=True).returncode != 0
    finally:
        for conn in conns:
            if name in conn.listNetworks():
                conn.networkLookupByName(name).destroy()
            conn.close()


def test_shared_storage_is_one_directory_at_the_same_path_on_every_host(testbed):
    h1, h2, h3 = testbed.hosts
    token = uuid.uuid4().hex
    file = f"{testbed.shared_path}/tb-{token}"
    try:
        h1.run("sh", "-c", f"echo {token} > {file}")
        assert h2.run("cat", file).stdout.strip() == token
        assert h3.run("cat", file).stdout.strip() == token
        assert (testbed.shared_dir / f"tb-{token}").read_text().strip() == token
    finally:
        (testbed.shared_dir / f"tb-{token}").unlink(missing_ok=True)


def test_a_host_reaches_the_broker_and_the_database_socket_with_the_projects_python(testbed):
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.mysql":
        pytest.fail("host agents share the test database: run the suite on MariaDB (make test)")
    script = (
        "import socket, sys, MySQLdb, redis\n"
        "print(socket.gethostname(), redis.Redis.from_url(sys.argv[1]).ping())\n"
        "conn = MySQLdb.connect(unix_socket='/run/mysqld/mysqld.sock', user=sys.argv[2], password=sys.argv[3])\n"
        "cur = conn.cursor(); cur.execute('SELECT 1 + 1'); print(cur.fetchone()[0])\n"
    )
    out = testbed["h3"].run(sys.executable, "-c", script, testbed.broker_url, db["USER"], db["PASSWORD"] or "")
    assert out.stdout.split() == ["h3", "True", "2"]


def test_hosts_reach_each_other_on_the_data_network(testbed):
    h1, _, h3 = testbed.hosts
    server = (
        "import socket\n"
        f"s = socket.create_server(('{h3.data_address}', 7741)); print('ready', flush=True)\n"
        "s.settimeout(10); c, peer = s.accept(); c.sendall(peer[0].encode())\n"
    )
    listener = h3.popen("python3", "-c", server, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        assert h1.run("python3", "-c", PROBE, h3.data_address, "7741").stdout.strip() == h1.data_address
    finally:
        listener.kill()
        listener.wait()


def test_a_domain_on_shared_storage_migrates_live_to_a_host_of_the_other_site(testbed):
    h1, h3 = testbed["h1"], testbed["h3"]
    name = f"tb-move-{uuid.uuid4().hex[:6]}"
    image = testbed.shared_dir / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    disk = f"""<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/>
      <source file='{testbed.shared_path}/{image.name}'/><target dev='vda' bus='virtio'/></disk>"""
    source, target = h1.connect(), h3.connect()
    try:
        # No VNC address in the XML: on each host, its own (qemu.conf), so the console moves along.
        dom = source.createXML(domain_xml(name, disk=disk))
        # Peer to peer: h1's libvirtd finds h3 by name. UNSAFE: libvirt counts only network file
        # systems (NFS, Ceph...) as shared, not a directory bound into both hosts.
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_UNSAFE
        dom.migrateToURI3(f"qemu+tcp://{h3.name}/system", {}, flags)
        moved = target.lookupByName(name)
        assert moved.isActive()
        assert ET.fromstring(moved.XMLDesc()).find("devices/graphics").get("listen") == h3.address
        assert name not in [d.name() for d in source.listAllDomains()]
        pid = int(h3.run("cat", f"/run/libvirt/qemu/{name}.pid").stdout)
        assert pid in h3.pids()
    finally:
        if name in [d.name() for d in target.listAllDomains()]:
            target.lookupByName(name).destroy()
        source.close()
        target.close()
        image.unlink(missing_ok=True)


@pytest.fixture
def spare():
    """A second, one-host testbed beside the first (its own prefix and subnets); down afterwards."""
    config = bed_config(
        TESTBED_PREFIX="cctb", TESTBED_HOSTS="x1:north", TESTBED_MGMT_NET="10.213.28", TESTBED_DATA_NET="10.213.29"
    )
    bring_down(config)  # what an interrupted run left
    bed = bring_up(config)
    yield bed
    bring_down(config)


def test_a_second_testbed_coexists_and_its_down_leaves_no_process_namespace_bridge_or_state(testbed, spare):
    x1 = spare["x1"]
    assert x1.netns == "cctb-x1"
    conn = x1.connect()
    try:
        conn.createXML(domain_xml("tb-gone", x1.address))
        conn.networkCreateXML(network_xml("tb-gone"))
    finally:
        conn.close()
    pids = x1.pids()
    names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids}
    assert {"libvirtd", "virtlogd", "qemu-system-x86", "dnsmasq"} <= names
    broker = int((spare.state / "redis.pid").read_text())
    # A namespace made inside a host (a router's, later) is that host's alone, and ends with it.
    nested = int(x1.run("sh", "-c", "ip netns add tbgw; ip netns exec tbgw sleep 600 >/dev/null 2>&1 & echo $!").stdout)
    assert nested not in pids
    assert "tbgw" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout

    bring_down(spare.config)

    assert [pid for pid in pids | {broker, nested} if running(pid)] == []
    assert "cctb-x1" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "cctb-" not in links
    assert not spare.state.exists()
    # The first testbed never noticed.
    conn = testbed["h1"].connect()
    assert conn.getHostname() == "h1"
    conn.close()


def test_a_lost_host_comes_back_with_up_keeping_its_defined_domains(spare):
    x1 = spare["x1"]
    conn = x1.connect()
    conn.defineXML(domain_xml("tb-kept", x1.address)).create()
    conn.close()

    x1.lose()
    assert x1.pids() == set()

    bring_up(spare.config)
    conn = x1.connect()
    try:
        dom = conn.lookupByName("tb-kept")
        assert not dom.isActive()
        dom.create()
        assert dom.isActive()
    finally:
        conn.close()
