"""Register a hypervisor endpoint from the command line (CONTRACT.md): checked before it is saved."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.models import Cluster, Endpoint, Site
from compute.services import endpoint_register, site_ensure


class Command(BaseCommand):
    help = "Register a hypervisor endpoint (libvirt URI or vCenter URL); it is checked before it is saved."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Endpoint.Kind.values)
        parser.add_argument("--url", required=True, help="qemu:///system, test:///default, https://vcenter/sdk ...")
        parser.add_argument("--username", default="")
        parser.add_argument("--password", default="")
        parser.add_argument("--site", default="main", help="site slug (created when missing)")
        parser.add_argument("--cluster-kind", default=Cluster.Kind.GENERAL, choices=Cluster.Kind.values)
        parser.add_argument("--domain-type", default=Endpoint.DomainType.KVM, choices=Endpoint.DomainType.values)
        parser.add_argument("--max-concurrency", type=int, default=4)
        parser.add_argument("--storage-pool", default="", help="libvirt storage pool for desktops (default: default)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        site = Site.objects.filter(slug=options["site"]).first() or site_ensure(slug=options["site"])
        try:
            endpoint = endpoint_register(
                actor=None,
                name=options["name"],
                kind=options["kind"],
                url=options["url"],
                username=options["username"],
                password=options["password"],
                site=site,
                cluster_kind=options["cluster_kind"],
                domain_type=options["domain_type"],
                max_concurrency=options["max_concurrency"],
                storage_pool=options["storage_pool"],
            )
        except ServiceError as exc:
            reason = exc.detail.get("reason", "") if isinstance(exc.detail, dict) else ""
            raise CommandError(f"{exc.code}: {exc.message}" + (f" ({reason})" if reason else "")) from exc
        result = {
            "name": endpoint.name,
            "kind": endpoint.kind,
            "url": endpoint.url,
            "site": site.slug,
            "status": endpoint.status,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(
                f"registered endpoint {endpoint.name} ({endpoint.kind} {endpoint.url}) at site {site.slug}"
            )
