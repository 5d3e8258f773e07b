"""A real CAS server (django-cas-server from PyPI) for the sign-in tests, the bench and `make sso-demo`.

`CasServer.start()` runs tests/sso/casserver as its own process on a free loopback port, with
its own SQLite database and its own users (USERS: CAS 3.0 attributes cn, employeeNumber,
departmentNumber, mail, eduPersonAffiliation, and authnContextClass for an MFA assertion).
`ticket_for()` signs a user in at the CAS server as a browser would and returns the service
ticket it issues.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests

from tests.harness.processes import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Cas#Pass2026"


def _person(number, name, department="cs", affiliation="student", **extra) -> dict:
    attributes = {
        "cn": name,
        "employeeNumber": number,
        "departmentNumber": department,
        "mail": f"{number}@campus.test",
        "eduPersonAffiliation": affiliation,
        **extra,
    }
    return {"password": PASSWORD, "attributes": {k: v for k, v in attributes.items() if v is not None}}


USERS = {
    "s20260001": _person("20260001", "王小明"),
    "s20260002": _person("20260002", "李小红"),
    "s20260003": _person("20260003", "赵小刚"),
    "s20269999": _person("20269999", "不在名单"),
    "s20260010": _person(None, "无学号同学"),
    "t1001": _person("T1001", "陈老师", affiliation="staff"),
    "t3001": _person("T3001", "吴老师", department="physics", affiliation="staff"),
    "20260004": _person("20260004", "钱小军"),  # a campus whose CAS user id is the student number
    "mfa_admin": _person("A9001", "多因素管理员", affiliation="staff", authnContextClass="mfa-totp"),
}


def bench_users(n: int) -> dict:
    """casbench0..N-1 (numbers C00000..) for bench/login.py."""
    return {f"casbench{i}": _person(f"C{i:05d}", f"压测{i}") for i in range(n)}


@dataclass
class CasServer:
    """One running CAS server; `url` is CAS_SERVER_URL for the portal."""

    users: dict = field(default_factory=lambda: dict(USERS))
    ticket_validity: int = 60
    port: int = 0
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cc-cas-")))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cas/"

    def settings(self) -> dict:
        return {"CAS_SERVER_URL": self.url, "CAS_VERSION": "3"}

    def start(self) -> "CasServer":
        (self.root / "users.json").write_text(json.dumps(self.users, ensure_ascii=False), encoding="utf-8")
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "CAS_TEST_ROOT": str(self.root),
            "CAS_TEST_TICKET_VALIDITY": str(self.ticket_validity),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.sso.casserver.serve", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}login", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.root / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the CAS server did not start:\n{output}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def sign_in(self, session: requests.Session, username: str, service: str, password: str = PASSWORD):
        """Post the CAS login form as a browser would; the response redirects to `service` with a ticket."""
        page = session.get(f"{self.url}login", params={"service": service}, timeout=30)
        form = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        data = {
            "lt": form.get("lt", ""),
            "csrfmiddlewaretoken": form.get("csrfmiddlewaretoken", ""),
            "service": service,
            "username": username,
            "password": password,
        }
        return session.post(
            f"{self.url}login", data=data, allow_redirects=False, timeout=30, headers={"Referer": page.url}
        )

    def ticket_for(self, username: str, service: str, password: str = PASSWORD) -> str:
        response = self.sign_in(requests.Session(), username, service, password)
        location = response.headers.get("Location", "")
        tickets = parse_qs(urlparse(location).query).get("ticket")
        if not tickets:
            raise AssertionError(f"no ticket for {username}: {response.status_code} {location or response.text[:300]}")
        return tickets[0]
