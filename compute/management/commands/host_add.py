"""Add a compute node by its libvirt URI (CONTRACT.md): checked before it is saved."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.models import Endpoint
from compute.services import host_add


class Command(BaseCommand):
    help = "Add a compute node (qemu+tls://, qemu+ssh:// or qemu+tcp://HOST/system); its capacity is read from it."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="host name (lower-case letters, digits, dashes)")
        parser.add_argument("--uri", required=True, help="libvirt URI, e.g. qemu+tls://node1.campus/system")
        parser.add_argument("--site", required=True, help="site slug (made when missing)")
        parser.add_argument("--cluster", required=True, help="cluster name at the site (made when missing)")
        parser.add_argument("--address", default="", help="management address (default: the URI's host)")
        parser.add_argument(
            "--data-address",
            default="",
            help="the host's IPv4 address on the data network (VXLAN of networks spanning hosts)",
        )
        parser.add_argument("--domain-type", default=Endpoint.DomainType.KVM, choices=Endpoint.DomainType.values)
        parser.add_argument("--storage-pool", default="default", help="libvirt storage pool for desktops")
        parser.add_argument(
            "--shared-storage", action="store_true", help="the pool is shared by every host of the cluster"
        )
        parser.add_argument(
            "--network-node",
            action="store_true",
            help="the host holds its cluster's (or site's) router gateways, SNAT, elastic IPs and port forwards",
        )
        parser.add_argument(
            "--migration-bandwidth", type=int, default=0, help="MiB/s for migrations leaving the host (0: no limit)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            host = host_add(
                actor=None,
                name=options["name"],
                uri=options["uri"],
                site=options["site"],
                cluster=options["cluster"],
                address=options["address"],
                domain_type=options["domain_type"],
                storage_pool=options["storage_pool"],
                shared_storage=options["shared_storage"],
                network_node=options["network_node"],
                data_address=options["data_address"],
                migration_bandwidth_mib=options["migration_bandwidth"],
            )
        except ServiceError as exc:
            reason = exc.detail.get("reason", "") if isinstance(exc.detail, dict) else ""
            raise CommandError(f"{exc.code}: {exc.message}" + (f" ({reason})" if reason else "")) from exc
        result = {"host": host.name, "cpus": host.cpus, "memory_mib": host.memory_mib, "gpus": len(host.gpu_devices)}
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(
                f"added host {host.name} ({host.uri}, {host.address or 'local'}): "
                f"{host.cpus} CPUs, {host.memory_mib} MiB, {len(host.gpu_devices)} GPUs"
            )
