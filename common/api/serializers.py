"""Serializer plumbing for viewsets: one serializer to read, one per write action to validate.

An update validates with the serializer of the service it calls, and nothing else: a body key
that the service would not change is refused with a 400 naming it (``UpdateSerializer``),
never passed on (a service called with a keyword it does not take is a 500) nor dropped
without a word.
"""

from collections.abc import Mapping

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status
from rest_framework.response import Response


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
