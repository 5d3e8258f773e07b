"""60 students logging in at once: local passwords, the campus CAS server and the campus LDAP directory.

Usage: .venv/bin/python bench/login.py [--users 60] [--workers 2] [--no-sso]

Runs uvicorn (as the Procfile does) on a free loopback port against a database of its own
(bench/env.py: `cc_bench_login` on the MariaDB of DATABASE_URL), with the production
password hasher (not the tests' MD5). Each student fetches the login page (CSRF cookie) and
posts the form; the wall time until all 60 are logged in is printed, with the same 60
clients fetching the login page only as the baseline measured in the same run.
Target (issue 8): all 60 logged in <= 8 s on 2 cores.

Then (issue 15) the same class signs in through a real CAS server (django-cas-server, as
tests/sso/cas.py starts it: portal -> CAS login form -> ticket -> validation) and through a
real slapd (the login form, LDAP bind), students whose roster accounts the first sign-in
activates; each burst runs twice (first sign-in of the term, then a returning class) and is
printed with its ratio to the local burst. Target: each <= 1.5x the local burst.
"""

import argparse
import os
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

PASSWORD = "Bench#Login2026"


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit("server did not start")


def _together(n: int, job) -> tuple[float, list]:
    """Run `job(i)` in n threads released at the same instant; wall time until the last finishes."""
    barrier = threading.Barrier(n + 1)
    results: list = [None] * n

    def run(i):
        barrier.wait()
        results[i] = job(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, results


def _sso_servers(users: int) -> tuple:
    from tests.sso.cas import USERS, CasServer, bench_users
    from tests.sso.slapd import Directory

    directory = Directory(extra_people=users).start()
    cas = CasServer(users={**USERS, **bench_users(users)}).start()
    return directory, cas


def _roster_accounts(users: int) -> None:
    """The class as a roster import leaves it: accounts by number, no password, students of a tenant."""
    from django.contrib.auth.hashers import make_password

    from tenants.models import Membership, Tenant, User

    tenant = Tenant.objects.create(slug="bench", name_zh="压测学院", path="/bench/")
    unusable = make_password(None)
    for prefix in ("C", "L"):
        accounts = User.objects.bulk_create(
            [User(username=f"{prefix.lower()}{i:05d}", student_number=f"{prefix}{i:05d}", password=unusable)
             for i in range(users)]
        )  # fmt: skip
        Membership.objects.bulk_create([Membership(user=u, tenant=tenant, role="student") for u in accounts])


def _form_login(base: str, username: str, password: str) -> bool:
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=60)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        allow_redirects=False,
        timeout=120,
    )
    return response.status_code == 302 and response.headers.get("Location") == "/"


def _cas_login(base: str, cas, username: str) -> bool:
    """Portal -> CAS login page -> credentials -> back to the portal with a ticket -> validated, signed in."""
    session = requests.Session()
    start = session.get(f"{base}/accounts/cas/login/", params={"next": "/"}, allow_redirects=False, timeout=60)
    service = parse_qs(urlparse(start.headers["Location"]).query)["service"][0]
    answer = cas.sign_in(session, username, service)
    back = session.get(answer.headers["Location"], allow_redirects=False, timeout=120)
    return back.status_code == 302 and back.headers.get("Location") == "/"


def _print_burst(label: str, users: int, wall: float, results: list, local: float) -> None:
    ok = sum(1 for r in results if r)
    ratio = wall / local
    verdict = "OK" if ratio <= 1.5 and ok == users else "OVER TARGET"
    print(
        f"{label}: {ok}/{users} signed in, all done in {wall:.2f} s; "
        f"ratio to local {ratio:.2f}x (target <= 1.5x: {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-sso", action="store_true", help="the local burst only")
    args = parser.parse_args()
    directory = cas = None
    if not args.no_sso:
        directory, cas = _sso_servers(args.users)

    env = {"LOG_LEVEL": "WARNING"}
    if directory is not None:
        env.update({**directory.settings(), **cas.settings()})
    os.environ.update(env)
    common.django_on("login")
    env = dict(os.environ)
    from django.conf import settings
    from django.contrib.auth.hashers import make_password

    from tenants.models import User

    encoded = make_password(PASSWORD)  # the production hasher: PASSWORD_HASHERS[0]
    User.objects.bulk_create([User(username=f"bench{i}", password=encoded) for i in range(args.users)])
    if directory is not None:
        _roster_accounts(args.users)
    common.print_load()
    print(f"hasher: {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[-1]}; {os.cpu_count()} CPUs; {args.workers} workers")

    port = common.free_port()
    server = common.uvicorn(port, env=env, workers=args.workers)
    try:
        _wait_for(port)
        base = f"http://127.0.0.1:{port}"

        def page_only(i):
            return requests.get(f"{base}/accounts/login/", timeout=60).status_code

        def login(i):
            return _form_login(base, f"bench{i}", PASSWORD)

        _together(4, page_only)  # warm the workers
        baseline, _codes = _together(args.users, page_only)
        wall, results = _together(args.users, login)
        ok = sum(1 for r in results if r)
        target = "OK" if wall <= 8 and ok == args.users else "OVER TARGET"
        print(f"baseline: {args.users} concurrent login-page loads in {baseline:.2f} s")
        print(
            f"login: {ok}/{args.users} logged in, all done in {wall:.2f} s (target <= 8 s: {target}); "
            f"ratio to baseline {wall / baseline:.1f}x"
        )
        if directory is not None:
            from tests.sso.slapd import BENCH_PREFIX
            from tests.sso.slapd import PASSWORD as LDAP_PASSWORD

            for round_name in ("first sign-in (activates the roster account)", "returning class"):
                cas_wall, cas_results = _together(args.users, lambda i: _cas_login(base, cas, f"casbench{i}"))
                _print_burst(f"CAS, {round_name}", args.users, cas_wall, cas_results, wall)
                ldap_wall, ldap_results = _together(
                    args.users, lambda i: _form_login(base, f"{BENCH_PREFIX}{i}", LDAP_PASSWORD)
                )
                _print_burst(f"LDAP, {round_name}", args.users, ldap_wall, ldap_results, wall)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if directory is not None:
            directory.stop()
            cas.stop()


if __name__ == "__main__":
    main()
