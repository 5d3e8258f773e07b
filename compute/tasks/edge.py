"""Celery task of a network node's agent (``manage.py host_agent``): its router gateways, SNAT, elastic IPs and
port forwards (compute/networking/gateway.py), sent to the node's own queue ``host.<name>``.

The portal sends it (``gateways_request``) after a change to an elastic IP or port forward, when a
network node is named, and periodically (``forwarding_sync``); the agent computes everything from the
database on the host itself. A node whose agent is down keeps the request queued: the rows it concerns
say they wait for that agent, and nothing is applied anywhere else.
"""

from celery import shared_task

from compute.networking import gateway


@shared_task(acks_late=True, ignore_result=True)
def edge_sync(name: str) -> dict:
    """On the network node ``name``'s agent (refused in any other process): converge its gateways."""
    return gateway.edge_sync(host_name=name)
