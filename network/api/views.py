"""Viewsets of the network API (thin: querysets from network.selectors, writes one service call each)."""

from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from common.errors import NotFound as ServiceNotFound
from network import rules, selectors, services
from network.api.serializers import (
    AddressPoolCreateSerializer,
    AddressPoolSerializer,
    AddressSerializer,
    AssignSerializer,
    AssociateSerializer,
    ElasticIPCreateSerializer,
    ElasticIPSerializer,
    NetworkCreateSerializer,
    NetworkSerializer,
    NicGroupSerializer,
    PortForwardCreateSerializer,
    PortForwardSerializer,
    PublicPoolSerializer,
    ReserveSerializer,
    RuleCreateSerializer,
    RuleSerializer,
    SecurityGroupCreateSerializer,
    SecurityGroupSerializer,
    SegmentCreateSerializer,
    SegmentSerializer,
    SubnetCreateSerializer,
    SubnetSerializer,
)
from network.errors import NetworkError
from network.models import (
    PublicPool,
    SecurityGroupRule,
    Subnet,
)
from tenants.selectors import tenant_list_for

# --- helpers ------------------------------------------------------------------------------------


def _tenant_for(user, slug: str | None, *, allow_none: bool = False):
    """The tenant named by ``slug`` among those the user sees; by default the user's first one.

    The system admin without a slug gets None (a platform object) when ``allow_none``.
    """
    tenants = tenant_list_for(user)
    if slug:
        tenant = tenants.filter(slug=slug).first()
        if tenant is None:
            raise NotFound(_("租户不存在。"))
        return tenant
    if allow_none and rules.is_system_admin(user):
        return None
    from tenants.selectors import memberships_of

    tenant = next((m.tenant for m in memberships_of(user)), None)
    if tenant is None:
        raise serializers.ValidationError({"tenant": [_("请指定租户。")]})
    return tenant


_NOT_FOUND = OpenApiResponse(description="not found")


def _assignable_tenant(user, slug):
    """The tenant a platform object is assigned to (None for none), among those the user sees."""
    if slug in (None, ""):
        return None
    tenant = tenant_list_for(user).filter(slug=slug).first()
    if tenant is None:
        raise serializers.ValidationError({"tenant": [_("租户不存在。")]})
    return tenant


def _platform_segment(user, pk):
    if pk is None:
        return None
    segment = selectors.segment_list_for(user).filter(pk=pk).first()
    if segment is None:
        raise ServiceNotFound(
            _("物理网段不存在或未分配给本租户。"),
            code=NetworkError.SEGMENT_NOT_FOUND,
            detail={"field": "platform_segment"},
        )
    return segment


# --- viewsets -----------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(request=NetworkCreateSerializer, responses={201: NetworkSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class NetworkViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Networks of the caller's tenants and the shared platform networks."""

    serializer_class = NetworkSerializer
    search_fields = ["name", "description"]
    filterset_fields = ["kind", "segment_type", "site"]
    ordering_fields = ["name", "id", "created_at"]

    def get_queryset(self):
        subnets = Subnet.objects.annotate(used=Count("addresses")).order_by("id")
        return (
            selectors.network_list_for(self.request.user)
            .prefetch_related(None)
            .prefetch_related(Prefetch("subnets", queryset=subnets))
            .order_by("id")
        )

    def create(self, request):
        data = NetworkCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        tenant = _tenant_for(request.user, values.pop("tenant", None), allow_none=True)
        values["platform_segment"] = _platform_segment(request.user, values.pop("platform_segment", None))
        network = services.network_create(actor=request.user, tenant=tenant, **values)
        return Response(NetworkSerializer(self.get_queryset().get(pk=network.pk)).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.network_delete(actor=request.user, network=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=SubnetCreateSerializer, responses={201: SubnetSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def subnets(self, request, pk=None):
        network = self.get_object()
        data = SubnetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subnet = services.subnet_create(actor=request.user, network=network, **data.validated_data)
        return Response(SubnetSerializer(subnet).data, status=status.HTTP_201_CREATED)


@extend_schema_view(list=extend_schema(parameters=[OpenApiParameter("network", int)]))
class SubnetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subnets with their usage: how many addresses of the pool are used and free."""

    serializer_class = SubnetSerializer
    ordering_fields = ["id", "cidr"]

    def get_queryset(self):
        network = self.request.query_params.get("network")
        network_id = int(network) if network and network.isdigit() else None
        return selectors.subnet_list_for(self.request.user, network_id=network_id).order_by("id")

    @extend_schema(request=ReserveSerializer, responses={201: AddressSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reserve(self, request, pk=None):
        subnet = self.get_object()
        data = ReserveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        address = services.address_reserve(actor=request.user, subnet=subnet, **data.validated_data)
        return Response(AddressSerializer(address).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("desktop", int), OpenApiParameter("network", int), OpenApiParameter("subnet", int)]
    ),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class AddressViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Addresses: desktops' NICs (IP, MAC, network, where the binding is pushed) and reserved ones.
    ``?desktop=<id>`` lists one desktop's addresses."""

    serializer_class = AddressSerializer
    search_fields = ["ip", "mac", "hostname"]
    filterset_fields = ["kind", "state"]
    ordering_fields = ["ip_int", "id"]

    def get_queryset(self):
        params = self.request.query_params

        def number(name):
            value = params.get(name)
            return int(value) if value and value.isdigit() and len(value) < 12 else None

        return selectors.address_list_for(
            self.request.user,
            desktop_id=number("desktop"),
            network_id=number("network"),
            subnet_id=number("subnet"),
        ).order_by("subnet_id", "ip_int")

    def destroy(self, request, pk=None):
        services.address_unreserve(actor=request.user, address=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=NicGroupSerializer, responses={200: AddressSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"], url_path="security-group")
    def security_group(self, request, pk=None):
        address = self.get_object()
        data = NicGroupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        group = get_object_or_404(
            selectors.security_group_list_for(request.user), pk=data.validated_data["security_group"]
        )
        address = services.nic_security_group_set(actor=request.user, address=address, group=group)
        return Response(AddressSerializer(address).data)


@extend_schema_view(
    create=extend_schema(request=SecurityGroupCreateSerializer, responses={201: SecurityGroupSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class SecurityGroupViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Security groups and their rules; a rule change reaches every desktop using the group."""

    serializer_class = SecurityGroupSerializer
    search_fields = ["name", "description"]
    filterset_fields = ["is_default"]
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.security_group_list_for(self.request.user).order_by("id")

    def create(self, request):
        data = SecurityGroupCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        tenant = _tenant_for(request.user, values.pop("tenant", None))
        group = services.security_group_create(actor=request.user, tenant=tenant, **values)
        return Response(
            SecurityGroupSerializer(self.get_queryset().get(pk=group.pk)).data, status=status.HTTP_201_CREATED
        )

    def destroy(self, request, pk=None):
        services.security_group_delete(actor=request.user, group=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RuleCreateSerializer, responses={201: RuleSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def rules(self, request, pk=None):
        group = self.get_object()
        data = RuleCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        remote = values.pop("remote_group", None)
        remote_group = None
        if remote is not None:
            remote_group = get_object_or_404(selectors.security_group_list_for(request.user), pk=remote)
        rule = services.rule_add(actor=request.user, group=group, remote_group=remote_group, **values)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None, 404: _NOT_FOUND})
    @action(detail=True, methods=["delete"], url_path=r"rules/(?P<rule_id>[0-9]{1,10})")
    def rule_delete(self, request, pk=None, rule_id=None):
        group = self.get_object()
        rule = get_object_or_404(SecurityGroupRule.objects.select_related("group__tenant"), pk=rule_id, group=group)
        services.rule_delete(actor=request.user, rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(create=extend_schema(request=PublicPoolSerializer, responses={201: PublicPoolSerializer}))
class PublicPoolViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Public address pools for elastic IPs (platform inventory)."""

    serializer_class = PublicPoolSerializer
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.public_pool_list_for(self.request.user).order_by("name", "id")

    def create(self, request):
        data = PublicPoolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pool = services.public_pool_create(actor=request.user, **data.validated_data)
        return Response(PublicPoolSerializer(self.get_queryset().get(pk=pool.pk)).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    create=extend_schema(request=ElasticIPCreateSerializer, responses={201: ElasticIPSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class ElasticIPViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Elastic IPs: a public address of a pool, bound to a desktop's NIC. ``applied`` says whether
    the hypervisor side is in place (``apply_note`` says why not)."""

    serializer_class = ElasticIPSerializer
    ordering_fields = ["ip", "id"]

    def get_queryset(self):
        return selectors.elastic_ip_list_for(self.request.user).order_by("id")

    def create(self, request):
        data = ElasticIPCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _tenant_for(request.user, data.validated_data.get("tenant"))
        pools = PublicPool.objects.order_by("id")
        pool = pools.filter(pk=data.validated_data["pool"]).first() if "pool" in data.validated_data else pools.first()
        if pool is None:
            raise serializers.ValidationError({"pool": [_("地址池不存在。")]})
        eip = services.elastic_ip_allocate(actor=request.user, tenant=tenant, pool=pool)
        return Response(ElasticIPSerializer(eip).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.elastic_ip_release(actor=request.user, eip=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=AssociateSerializer, responses={200: ElasticIPSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def associate(self, request, pk=None):
        eip = self.get_object()
        data = AssociateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        address = None
        if data.validated_data["address"] is not None:
            address = get_object_or_404(selectors.address_list_for(request.user), pk=data.validated_data["address"])
        eip = services.elastic_ip_associate(actor=request.user, eip=eip, address=address)
        return Response(ElasticIPSerializer(eip).data)


@extend_schema_view(
    create=extend_schema(request=PortForwardCreateSerializer, responses={201: PortForwardSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND}),
)
class PortForwardViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Port forwards: public IP:port → a desktop's NIC:port."""

    serializer_class = PortForwardSerializer
    ordering_fields = ["public_port", "id"]

    def get_queryset(self):
        return selectors.port_forward_list_for(self.request.user).order_by("id")

    def create(self, request):
        data = PortForwardCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        eip = selectors.elastic_ip_list_for(request.user).filter(pk=values["elastic_ip"]).first()
        if eip is None:
            raise serializers.ValidationError({"elastic_ip": [_("弹性 IP 不存在。")]})
        address = selectors.address_list_for(request.user).filter(pk=values["address"]).first()
        if address is None:
            raise serializers.ValidationError({"address": [_("网卡不存在。")]})
        forward = services.port_forward_create(
            actor=request.user,
            eip=eip,
            address=address,
            protocol=values["protocol"],
            public_port=values["public_port"],
            private_port=values["private_port"],
        )
        return Response(PortForwardSerializer(forward).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.port_forward_delete(actor=request.user, forward=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(request=SegmentCreateSerializer, responses={201: SegmentSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class SegmentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Platform segments: host bridges, vCenter port groups, VLAN/VXLAN ranges. The system admin creates
    and assigns them; a tenant admin sees the ones its tenants may put networks on."""

    serializer_class = SegmentSerializer
    filterset_fields = ["kind", "site"]
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.segment_list_for(self.request.user).order_by("id")

    def create(self, request):
        data = SegmentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        segment = services.segment_create(actor=request.user, **data.validated_data)
        body = SegmentSerializer(self.get_queryset().get(pk=segment.pk), context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.segment_delete(actor=request.user, segment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _assign(self, request, assigned: bool):
        segment = self.get_object()
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _assignable_tenant(request.user, data.validated_data["tenant"])
        if tenant is None:
            raise serializers.ValidationError({"tenant": [_("请指定租户。")]})
        services.segment_assign(actor=request.user, segment=segment, tenant=tenant, assigned=assigned)
        return Response(SegmentSerializer(self.get_queryset().get(pk=segment.pk), context={"request": request}).data)

    @extend_schema(request=AssignSerializer, responses={200: SegmentSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give the tenant (and the tenants under it) the segment."""
        return self._assign(request, True)

    @extend_schema(
        request=AssignSerializer, responses={200: SegmentSerializer, 404: _NOT_FOUND, 409: OpenApiResponse()}
    )
    @action(detail=True, methods=["post"])
    def unassign(self, request, pk=None):
        """Take the segment back from the tenant (refused while a network of its subtree uses it)."""
        return self._assign(request, False)


@extend_schema_view(
    create=extend_schema(request=AddressPoolCreateSerializer, responses={201: AddressPoolSerializer}),
    destroy=extend_schema(responses={204: None, 404: _NOT_FOUND, 409: OpenApiResponse()}),
)
class AddressPoolViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Address pools: private ranges the platform gives a tenant for its subnets (never overlapping),
    with the largest subnet each allows."""

    serializer_class = AddressPoolSerializer
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.address_pool_list_for(self.request.user).order_by("id")

    def create(self, request):
        data = AddressPoolCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["tenant"] = _assignable_tenant(request.user, values.pop("tenant", None))
        pool = services.address_pool_create(actor=request.user, **values)
        return Response(AddressPoolSerializer(self.get_queryset().get(pk=pool.pk)).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.address_pool_delete(actor=request.user, pool=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=AssignSerializer, responses={200: AddressPoolSerializer, 404: _NOT_FOUND, 409: OpenApiResponse()}
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        """Give the pool to a tenant, or take it back (``tenant`` null)."""
        pool = self.get_object()
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = _assignable_tenant(request.user, data.validated_data["tenant"])
        services.address_pool_assign(actor=request.user, pool=pool, tenant=tenant)
        return Response(AddressPoolSerializer(self.get_queryset().get(pk=pool.pk)).data)


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("networks", NetworkViewSet, basename="network")
    router.register("subnets", SubnetViewSet, basename="subnet")
    router.register("addresses", AddressViewSet, basename="address")
    router.register("security-groups", SecurityGroupViewSet, basename="security-group")
    router.register("segments", SegmentViewSet, basename="segment")
    router.register("address-pools", AddressPoolViewSet, basename="address-pool")
    router.register("public-pools", PublicPoolViewSet, basename="public-pool")
    router.register("elastic-ips", ElasticIPViewSet, basename="elastic-ip")
    router.register("port-forwards", PortForwardViewSet, basename="port-forward")


urlpatterns: list = []
