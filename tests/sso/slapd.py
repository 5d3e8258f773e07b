"""A real OpenLDAP slapd (Debian's) for the sign-in tests, the bench and `make sso-demo`.

`Directory.start()` writes a slapd.conf into a directory of its own, loads the campus test
tree with slapadd (ou=students, ou=staff, ou=groups; a locked account through the ppolicy
overlay, which slapd itself enforces) and starts slapd on a free loopback port. Nothing is
installed system-wide and no debconf question is asked: the packages' own slapd database is
never used. `stop()` ends only the slapd it started.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.processes import free_port, stop_process

SLAPD = os.environ.get("SLAPD_PATH", "/usr/sbin/slapd")
SLAPADD = os.environ.get("SLAPADD_PATH", "/usr/sbin/slapadd")
SLAPPASSWD = os.environ.get("SLAPPASSWD_PATH", "/usr/sbin/slappasswd")
MODULES = "/usr/lib/ldap"
SCHEMAS = "/etc/ldap/schema"

BASE = "dc=campus,dc=test"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "Directory#Admin1"
SERVICE_DN = f"cn=portal,ou=services,{BASE}"
SERVICE_PASSWORD = "Portal#Bind2026"
PASSWORD = "Campus#Pass2026"  # every person of the test tree


@dataclass(frozen=True)
class Person:
    uid: str
    ou: str  # students | staff
    number: str | None
    name: str
    department: str = "cs"
    mail: str = ""
    locked: bool = False


# The test tree. Numbers match tests' rosters (20260001.. are CS101 students of the demo).
PEOPLE = [
    Person("s20260001", "students", "20260001", "王小明"),
    Person("s20260002", "students", "20260002", "李小红"),
    Person("s20260003", "students", "20260003", "赵小刚"),
    Person("s20269999", "students", "20269999", "不在名单"),  # on no roster
    Person("s20260009", "students", "20260009", "锁定同学", locked=True),
    Person("s20260010", "students", None, "无学号同学"),  # the number attribute is missing
    Person("s20260011", "students", "２０２６００１１", "全角学号"),  # unexpected encoding
    Person("t1001", "staff", "T1001", "陈老师", department="cs"),
    Person("t2001", "staff", "T2001", "周老师", department="me"),
    Person("t3001", "staff", "T3001", "吴老师", department="physics"),
]
GROUPS = {"cs-teachers": ["t1001"], "me-staff": ["t2001"]}
BENCH_PREFIX = "ldapbench"  # bench/login.py adds ldapbench0..N-1 (numbers L00000..) under ou=students


def _person_ldif(person: Person, password_hash: str) -> str:
    lines = [
        f"dn: uid={person.uid},ou={person.ou},{BASE}",
        "objectClass: inetOrgPerson",
        f"uid: {person.uid}",
        f"cn: {person.name}",
        f"sn: {person.name[:1]}",
        f"displayName: {person.name}",
        f"mail: {person.mail or person.uid + '@campus.test'}",
        f"departmentNumber: {person.department}",
        f"userPassword: {password_hash}",
    ]
    if person.number is not None:
        lines.append(f"employeeNumber: {person.number}")
    if person.locked:
        # ppolicy: a lock time of 000001010000Z means "locked until an administrator unlocks".
        lines.append("pwdAccountLockedTime: 000001010000Z")
    return "\n".join(lines) + "\n"


def tree_ldif(extra_people: int = 0) -> str:
    """The whole test tree as LDIF (slapadd); `extra_people` bench students ldapbench0..N-1."""
    password_hash = subprocess.run(
        [SLAPPASSWD, "-s", PASSWORD, "-h", "{SSHA}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    service_hash = subprocess.run(
        [SLAPPASSWD, "-s", SERVICE_PASSWORD, "-h", "{SSHA}"], check=True, capture_output=True, text=True
    ).stdout.strip()
    parts = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: campus\no: Campus\n",
        f"dn: ou=policies,{BASE}\nobjectClass: organizationalUnit\nou: policies\n",
        f"dn: cn=default,ou=policies,{BASE}\nobjectClass: pwdPolicy\nobjectClass: device\ncn: default\n"
        # The lock is the administrator's (pwdAccountLockedTime on an entry), never a count of failures:
        # the portal's own lockout is under test, and one test's failures must not lock the next one out.
        "pwdAttribute: userPassword\npwdLockout: TRUE\npwdMaxFailure: 0\npwdLockoutDuration: 0\n",
    ]
    for ou in ("students", "staff", "groups", "services"):
        parts.append(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n")
    parts.append(
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: portal\nuserPassword: {service_hash}\n"
    )
    bench = (Person(f"{BENCH_PREFIX}{i}", "students", f"L{i:05d}", f"压测{i}") for i in range(extra_people))
    people = [*PEOPLE, *bench]
    parts.extend(_person_ldif(person, password_hash) for person in people)
    for name, members in GROUPS.items():
        member_lines = "".join(f"member: uid={uid},ou=staff,{BASE}\n" for uid in members)
        parts.append(f"dn: cn={name},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {name}\n{member_lines}")
    return "\n".join(parts)


SLAPD_CONF = """\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
include {schemas}/nis.schema
modulepath {modules}
moduleload back_mdb
moduleload ppolicy
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
loglevel none
sizelimit 5000

database mdb
maxsize 268435456
suffix "{base}"
rootdn "{admin_dn}"
rootpw {admin_password}
directory {root}/data
index uid,employeeNumber eq
index member eq
access to attrs=userPassword
  by anonymous auth
  by self write
  by * none
access to *
  by dn.exact="{service_dn}" read
  by self read
  by * none
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{base}"
ppolicy_use_lockout
"""


@dataclass
class Directory:
    """One running slapd with the test tree; `uri` is ldap://127.0.0.1:PORT."""

    extra_people: int = 0
    port: int = 0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cc-slapd-")))
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def settings(self) -> dict:
        """The portal's environment variables (CONTRACT.md names) for this directory."""
        return {
            "LDAP_SERVER_URI": self.uri,
            "LDAP_BIND_DN": SERVICE_DN,
            "LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
            "LDAP_USER_BASE": BASE,
            "LDAP_USER_FILTER": "(|(uid=%(user)s)(employeeNumber=%(user)s))",
            "LDAP_NUMBER_ATTR": "employeeNumber",
            "LDAP_GROUP_BASE": f"ou=groups,{BASE}",
        }

    def start(self) -> "Directory":
        if not Path(SLAPD).exists():
            raise RuntimeError(f"{SLAPD} is missing: `make test` installs slapd (scripts/setup.sh)")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        conf = self.root / "slapd.conf"
        conf.write_text(
            SLAPD_CONF.format(
                schemas=SCHEMAS,
                modules=MODULES,
                root=self.root,
                base=BASE,
                admin_dn=ADMIN_DN,
                admin_password=ADMIN_PASSWORD,
                service_dn=SERVICE_DN,
            )
        )
        ldif = self.root / "tree.ldif"
        ldif.write_text(tree_ldif(self.extra_people), encoding="utf-8")
        subprocess.run([SLAPADD, "-q", "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
        self.port = self.port or free_port()
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-f", str(conf), "-h", self.uri],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait()
        return self

    def _wait(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"slapd exited: {self.process.stderr.read().decode(errors='replace')}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("slapd did not listen within 15 s")
                time.sleep(0.05)

    def pause(self) -> None:
        """A directory that is down but whose address still takes connections: nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
