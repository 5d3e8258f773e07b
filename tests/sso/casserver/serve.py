"""Run the test CAS server: `python -m tests.sso.casserver.serve PORT` with CAS_TEST_ROOT set.

Migrates its SQLite database, registers the services it serves (any loopback URL, with every
attribute released and single logout on; a second pattern for "another service"), then serves
with Django's threaded WSGI server.
"""

import os
import sys


def main() -> None:
    port = int(sys.argv[1])
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.sso.casserver.settings"
    import django

    django.setup()
    import socketserver

    from cas_server.models import ReplaceAttributName, ServicePattern
    from django.core.management import call_command
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0, interactive=False)
    patterns = [
        ("portal", 100, r"^https?://(127\.0\.0\.1|localhost)(:[0-9]+)?/accounts/.*$"),
        ("other", 200, r"^https?://(127\.0\.0\.1|localhost)(:[0-9]+)?/other/.*$"),
    ]
    for name, pos, regex in patterns:
        pattern, _created = ServicePattern.objects.update_or_create(
            name=name, defaults={"pos": pos, "pattern": regex, "single_log_out": True}
        )
        ReplaceAttributName.objects.get_or_create(name="*", replace="", service_pattern=pattern)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 256  # a class of 60 arrives at once

    httpd = Server(("127.0.0.1", port), QuietHandler)
    httpd.set_app(get_wsgi_application())
    httpd.serve_forever()


if __name__ == "__main__":
    main()
