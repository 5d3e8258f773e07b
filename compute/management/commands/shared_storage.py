"""Give a cluster its shared storage (README, "Shared storage"): the pool is set up on every host of it."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.models import SharedStorage
from compute.services import shared_storage_set


class Command(BaseCommand):
    help = "Set a cluster's shared storage pool (NFS mounted by libvirt, or a directory every host mounts)."

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="site slug")
        parser.add_argument("--cluster", required=True, help="cluster name at the site")
        parser.add_argument("--pool", required=True, help="libvirt storage pool name on every host")
        parser.add_argument("--kind", default=SharedStorage.Kind.NETFS, choices=SharedStorage.Kind.values)
        parser.add_argument("--path", required=True, help="mount point / directory, the same on every host")
        parser.add_argument("--source-host", default="", help="netfs: the NFS server")
        parser.add_argument("--source-path", default="", help="netfs: the exported directory")
        parser.add_argument(
            "--unsafe-migration",
            action="store_true",
            help="libvirt does not recognise this directory as shared: migrate with VIR_MIGRATE_UNSAFE",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            storage = shared_storage_set(
                actor=None,
                site=options["site"],
                cluster=options["cluster"],
                pool=options["pool"],
                kind=options["kind"],
                path=options["path"],
                source_host=options["source_host"],
                source_path=options["source_path"],
                unsafe_migration=options["unsafe_migration"],
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        hosts = sorted(storage.cluster.endpoints.filter(pools__name=storage.pool).values_list("name", flat=True))
        result = {"cluster": storage.cluster.name, "pool": storage.pool, "kind": storage.kind, "hosts": hosts}
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(f"cluster {storage.cluster.name}: shared pool {storage.pool} on {', '.join(hosts)}")
