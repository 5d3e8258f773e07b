"""`make sso-demo`: the test slapd and CAS server on fixed loopback ports, beside `make run`, until Ctrl-C.

Prints the settings that point the portal at them. The demo's student1/student2 (numbers
20260001/20260002) are the campus users s20260001 (CAS) and s20260002 (LDAP) here.
"""

import os
import signal
import time

from tests.sso.cas import PASSWORD as CAS_PASSWORD
from tests.sso.cas import CasServer
from tests.sso.slapd import PASSWORD as LDAP_PASSWORD
from tests.sso.slapd import Directory


def main() -> None:
    directory = Directory(port=int(os.environ.get("SSO_DEMO_LDAP_PORT", "3890"))).start()
    cas = CasServer(port=int(os.environ.get("SSO_DEMO_CAS_PORT", "8001"))).start()
    settings = {**cas.settings(), **directory.settings(), "DIRECTORY_GROUP_ROLES": '{"cs-teachers": "cs:teacher"}'}
    print("\nCampus sign-in demo servers are running. In another terminal:\n")
    print("  " + " \\\n  ".join(f"{name}='{value}'" for name, value in settings.items()) + " \\\n  make run\n")
    print(f"CAS (the 统一身份认证登录 button): s20260001 / {CAS_PASSWORD}  -> the demo's student1")
    print(f"LDAP (the login form):             s20260002 / {LDAP_PASSWORD}  -> the demo's student2")
    print(f"                                    t1001 / {LDAP_PASSWORD}      -> a teacher of cs (group cs-teachers)")
    print("\nCtrl-C stops both.", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cas.stop()
        directory.stop()


if __name__ == "__main__":
    main()
