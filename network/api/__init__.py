"""REST API of network: networks, subnets (with usage), addresses (a desktop's NICs), security groups
and their rules, public pools, elastic IPs and port forwards.

Thin views: querysets come from network.selectors (another tenant's object is a 404),
every write is one service call, and services' refusals become {"code", "message", "detail"}.
"""

from network.api.views import register, urlpatterns

__all__ = ["register", "urlpatterns"]
