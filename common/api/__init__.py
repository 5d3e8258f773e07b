"""API plumbing every app's REST views share: the error format, parsers, pagination, serializer mixins."""
