"""The host agent of a compute node: a Celery worker on the host's own queue ``host.<name>``.

Run it on the compute node itself (docs/hosts.md has its systemd unit). It needs the portal's
database and broker (DATABASE_URL, CELERY_BROKER_URL) and the host's local libvirtd; it records a
heartbeat at once, then runs what the portal sends to its queue (heartbeats every 30 s).
"""

import logging
import os
import socket

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.models import Host


class Command(BaseCommand):
    help = "Run the host agent of this compute node: a Celery worker consuming the queue host.<name>."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="", help="the host's name in the portal (default: this hostname)")
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, **options):
        from celery import current_app as app

        from compute.networking.gateway import AGENT_ENV
        from compute.tasks.edge import edge_sync
        from compute.tasks.hosts import host_heartbeat

        name = options["host"] or socket.gethostname().split(".")[0]
        host = Host.objects.select_related("endpoint").filter(endpoint__name=name).first()
        if host is None:
            raise CommandError(f"host_not_found: no host {name!r} (add it first: manage.py host_add)")
        # Work that edits this host (its gateways' namespaces and firewall) runs only in its own agent.
        os.environ[AGENT_ENV] = name
        try:
            host_heartbeat(name)  # alive from the first second, before the first beat arrives
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if host.is_network_node:
            try:
                edge_sync(name)  # what changed while the agent was away, before the queue is read
            except Exception:  # noqa: BLE001 - the queued requests retry it; the agent must start
                logging.getLogger(__name__).exception("host agent %s: first gateway sync failed", name)
        self.stdout.write(f"host agent {name}: consuming {host.queue}")
        app.worker_main(
            [
                "worker",
                "--queues",
                host.queue,
                "--hostname",
                f"agent-{name}@%h",
                "--concurrency",
                str(options["concurrency"]),
                "--loglevel",
                options["loglevel"],
                "--without-gossip",
                "--without-mingle",
            ]
        )
