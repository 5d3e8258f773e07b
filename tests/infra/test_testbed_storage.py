"""The testbed's shared storage is shared by test files running at the same time (and a bench beside
them): libvirt refuses a second storage pool on a target path another pool holds ("Storage source
conflict with pool"), so a test or bench that needs a pool there makes it in a directory of its own
(``Testbed.shared_area``), never on the shared path itself. CI once failed on exactly that."""

import re
from pathlib import Path

from tests.harness.testbed import SharedArea, Testbed

ROOT = Path(__file__).resolve().parents[2]
# the shared path itself, not a file or directory under it: `shared_path` not followed by `}/`
BARE = re.compile(r"shared_path(?!\}/)")


def test_no_test_or_bench_uses_the_shared_path_itself():
    offenders = []
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py")]):
        if path in (ROOT / "tests/harness/testbed.py", Path(__file__)):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BARE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "use testbed.shared_area(name) for a pool on the shared storage:\n" + "\n".join(offenders)


def test_each_shared_area_is_a_directory_of_its_own(tmp_path):
    bed = Testbed(hosts=(), broker_url="", shared_path="/srv/shared", shared_dir=tmp_path, state=tmp_path, config={})
    first, second = bed.shared_area("p1"), bed.shared_area("p2")
    assert first == SharedArea(dir=tmp_path / "p1", path="/srv/shared/p1") and first.dir.is_dir()
    assert "<path>/srv/shared/p2</path>" in second.pool_xml("p2")
    (first.dir / "golden.qcow2").write_bytes(b"x")
    first.remove()
    assert not first.dir.exists() and second.dir.is_dir()
