"""Hypervisor endpoints and sites, managed by system admins."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from compute import selectors, services
from compute.api.access import require_system_admin
from compute.models import Endpoint, Site


class EndpointSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Endpoint
        # The password is write-only: it never leaves the portal.
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "username",
            "site",
            "cluster",
            "domain_type",
            "max_concurrency",
            "status",
            "last_error",
            "last_checked_at",
            "is_active",
        ]


class EndpointCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=Endpoint.Kind.values)
    url = serializers.CharField(max_length=255)
    username = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)
    password = serializers.CharField(
        max_length=255, required=False, default="", allow_blank=True, write_only=True, style={"input_type": "password"}
    )
    site = serializers.SlugField(required=False, default="main")
    domain_type = serializers.ChoiceField(choices=Endpoint.DomainType.values, default="kvm")
    max_concurrency = serializers.IntegerField(min_value=1, max_value=64, default=4)


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "slug", "name", "queue"]


@extend_schema_view(create=extend_schema(request=EndpointCreateSerializer, responses={201: EndpointSerializer}))
class EndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Hypervisor endpoints, for the system admin (and the audit admin, read-only)."""

    serializer_class = EndpointSerializer
    search_fields = ["name", "url"]
    filterset_fields = ["kind", "status", "is_active"]

    def get_queryset(self):
        return selectors.endpoint_list_for(self.request.user).order_by("name")

    def create(self, request):
        require_system_admin(request.user)
        data = EndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        site = services.site_ensure(slug=values.pop("site"))
        endpoint = services.endpoint_register(actor=request.user, site=site, **values)
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class SiteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SiteSerializer

    def get_queryset(self):
        return selectors.site_list_for(self.request.user).order_by("slug")
