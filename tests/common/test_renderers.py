"""common.api.renderers: orjson writes the bytes DRF's JSONRenderer would, or leaves the body to it."""

import datetime
import decimal
import uuid

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from common.api.renderers import ORJSONRenderer

UTC = datetime.UTC
SAMPLES = [
    {"count": 2, "next": None, "results": [{"id": 1, "name": "桌面-1", "ok": True, "ratio": 0.5}]},
    {"at": datetime.datetime(2026, 12, 3, 17, 5, 1, 123456, tzinfo=UTC), "day": datetime.date(2026, 12, 3)},
    {"local": datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))},
    {"time": datetime.time(8, 0), "span": datetime.timedelta(seconds=90), "price": decimal.Decimal("1.50")},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "label": gettext_lazy("迁移"), 7: "int key"},
    {"nested": [[1, 2], (3, 4), {"a": None}], "empty": {}, "text": "line\u2028break\u2029end"},
    {"big": 2**70},
    ["a", 1, None, 1e300],
]


@pytest.mark.parametrize("data", SAMPLES)
def test_the_bytes_equal_drfs(data):
    assert ORJSONRenderer().render(data) == JSONRenderer().render(data)


def test_indented_and_empty_bodies_are_drfs():
    data = {"a": [1, 2]}
    media = "application/json; indent=4"
    assert ORJSONRenderer().render(data, media) == JSONRenderer().render(data, media)
    assert ORJSONRenderer().render(None) == b""


def test_what_neither_knows_is_refused_and_nan_is_null():
    assert ORJSONRenderer().render({"x": float("nan"), "y": float("inf")}) == b'{"x":null,"y":null}'
    with pytest.raises(TypeError):
        ORJSONRenderer().render({"x": object()})


def test_the_api_renders_with_it(settings):
    from rest_framework.settings import api_settings

    assert [ORJSONRenderer] == api_settings.DEFAULT_RENDERER_CLASSES
