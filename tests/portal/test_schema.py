"""The OpenAPI schema is valid and generated without a warning (a warning hides a wrong schema)."""

from io import StringIO

from django.core.management import call_command


def test_the_openapi_schema_validates_without_warnings():
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null", stdout=out, stderr=out)
