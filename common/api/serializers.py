"""Serializer plumbing for viewsets: one serializer to read, one per write action to validate."""

from rest_framework import status
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
