"""common.api.serializers.FastReadMixin: a list row read the short way is DRF's row, field for field."""

import pytest
from rest_framework import serializers

from bench import rows, rows_campus
from common.api.renderers import ORJSONRenderer
from compute import selectors
from compute.api.desktops import DesktopSerializer
from compute.models import Desktop

pytestmark = pytest.mark.django_db


def test_desktop_rows_equal_drfs_own():
    world = rows.make_world("fast-uni", "fast-cs")
    rows.grow_desktops(world, 3)
    rows_campus.grow_seats(world, 2)  # with a course and an image version
    Desktop.objects.filter(name="desktop-1").update(
        error_reason="boom", last_error="失败", vnc_port=5901, guest_ip="10.0.0.5", gpus=1, imported=True
    )
    desktops = list(selectors.desktop_list_for(world["admin"]).order_by("id"))
    listed = DesktopSerializer(desktops, many=True)
    fast = listed.data
    drf = [serializers.ModelSerializer.to_representation(listed.child, d) for d in desktops]
    assert len(fast) == 5
    assert [list(row) for row in fast] == [list(row) for row in drf]  # same keys, same order
    assert ORJSONRenderer().render(fast) == ORJSONRenderer().render(drf)
    assert {row["course"] for row in fast} == {None, world["course"].pk}
    assert {row["tenant"] for row in fast} == {"fast-cs"}


def test_a_row_that_fails_the_short_way_is_read_drfs_way(monkeypatch):
    world = rows.make_world("fast-uni", "fast-cs")
    rows.grow_desktops(world, 1)
    desktop = selectors.desktop_list_for(world["admin"]).get()
    serializer = DesktopSerializer()
    steps = serializer._read_steps()
    monkeypatch.setitem(serializer.__dict__, "_fast_read_steps", [*steps, (1, "broken", "no_such_attribute", str)])
    assert serializer.to_representation(desktop) == serializers.ModelSerializer.to_representation(serializer, desktop)
