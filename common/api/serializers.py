"""Serializer plumbing for viewsets: one serializer to read, one per write action to validate."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response


class ReadWriteSerializers:
    """Read with `serializer_class`; validate writes with `write_serializers[action]`."""

    write_serializers: dict = {}

    def get_serializer_class(self):
        return self.write_serializers.get(self.action, self.serializer_class)

    def validated(self, data=None):
        serializer = self.get_serializer(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def respond(self, instance, status_code=status.HTTP_200_OK):
        return Response(self.serializer_class(instance, context=self.get_serializer_context()).data, status=status_code)


@extend_schema_field(OpenApiTypes.STR)
class ChoiceLabelField(serializers.Field):
    """The label of a choices value, in the reader's language: what ``source="get_state_display"``
    gives, without Django building the choices dict and DRF inspecting the method's signature again
    for every row of a list (a tenth of a desktop page's time at 50 rows)."""

    def __init__(self, choices, **kwargs):
        self._labels = dict(choices)
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return str(self._labels.get(value, value))
