"""Serializer plumbing for viewsets: one serializer to read, one per write action to validate.

An update validates with the serializer of the service it calls, and nothing else: a body key
that the service would not change is refused with a 400 naming it (``UpdateSerializer``),
never passed on (a service called with a keyword it does not take is a 500) nor dropped
without a word.
"""

from collections.abc import Mapping

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2})?$", "example": "08:00"})
class WallClockTimeField(serializers.TimeField):
    """A time of day on the campus clock, "08:00" or "08:00:00". The schema says so with a pattern:
    OpenAPI's ``format: time`` is RFC 3339's, which requires an offset these times do not have."""


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"})
class YearMonthField(serializers.DateField):
    """A month, written "2026-10" (a date field would promise a whole date)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%Y-%m")
        super().__init__(**kwargs)


class UpdateSerializer(serializers.Serializer):
    """The body of a PUT or PATCH: exactly the keyword arguments its service takes.

    Unknown or read-only keys are refused, each named in ``detail``."""

    default_error_messages = {"not_writable": _("该字段不可修改。")}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            refused = sorted(str(key) for key in data if key not in writable)
            if refused:
                message = self.error_messages["not_writable"]
                raise serializers.ValidationError({key: [message] for key in refused})
        return super().to_internal_value(data)


class ReadWriteSerializers:
    """Read with `serializer_class`; validate writes with `write_serializers[action]`.

    PUT (``update``) validates like PATCH (``partial_update``) unless it has a serializer of its
    own: the read serializer is never the one that validates a write."""

    write_serializers: dict = {}

    def get_serializer_class(self):
        action = self.action
        if action == "update" and "update" not in self.write_serializers:
            action = "partial_update"
        return self.write_serializers.get(action, self.serializer_class)

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
