"""common.api.serializers.FastReadMixin: a list row read the short way is DRF's row, field for field."""

import pytest
from rest_framework import serializers

from bench import rows, rows_campus
from common.api.renderers import ORJSONRenderer
from common.api.serializers import FastReadMixin
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


def test_every_api_collection_answers_the_same_with_drfs_own_read_path(client, monkeypatch):
    """Each list of the list bench (bench/rows.py), asked once the short way and once with the short way
    switched off (every row read by DRF): the same JSON, byte for byte, for every serializer that uses it."""
    world = rows.make_world("fast-uni", "fast-cs")
    for endpoint in rows.ENDPOINTS:
        endpoint.grow(world, 3)
    Desktop.objects.filter(name="desktop-1").update(error_reason="boom", last_error="失败", guest_ip="10.0.0.5")
    collections = [endpoint for endpoint in rows.ENDPOINTS if endpoint.path.startswith("/api/")]
    assert len(collections) >= 9
    for endpoint in collections:
        headers = {"HTTP_AUTHORIZATION": f"Token {rows.token_for(endpoint.user(world))}"}
        url = endpoint.url(world)
        fast = client.get(url, **headers)
        with monkeypatch.context() as patched:
            patched.setattr(FastReadMixin, "_fast_representation", _refuse)
            drf = client.get(url, **headers)
        assert fast.status_code == drf.status_code == 200, url
        assert fast.json()["results"], f"{url}: no rows to compare"
        assert fast.content == drf.content, url


def _refuse(self, instance):
    raise RuntimeError("the short way is off")


def test_a_list_joins_what_its_rows_show_of_other_tables_as_columns(django_assert_max_num_queries):
    """A page of the desktop list is read with the tenant's slug, the owner's username, the flavor's and
    the endpoint's names joined in as columns: no tenant, user, flavor or endpoint instance is built."""
    world = rows.make_world("fast-uni", "fast-cs")
    rows.grow_desktops(world, 3)
    Desktop.objects.filter(name="desktop-1").update(owner=None)  # an imported VM nobody owns: null, as DRF says
    listed = DesktopSerializer.read_queryset(selectors.desktop_list_for(world["admin"]).order_by("id"))
    desktops = list(listed)
    assert not any(
        Desktop._meta.get_field(name).is_cached(desktop)
        for desktop in desktops
        for name in ("tenant", "owner", "flavor", "endpoint")
    )
    serializer = DesktopSerializer(desktops, many=True)
    with django_assert_max_num_queries(1):  # the page's NICs, nothing per row
        fast = serializer.data
    assert "fields" not in serializer.child.__dict__  # DRF's ~30 fields never built for a list read the short way
    drf = [serializers.ModelSerializer.to_representation(DesktopSerializer(), d) for d in desktops]
    assert ORJSONRenderer().render(fast) == ORJSONRenderer().render(drf)
    assert None in {row["owner"] for row in fast}
    assert {row["tenant"] for row in fast} == {"fast-cs"}


def test_a_joined_column_of_a_missing_row_gives_drfs_default():
    """A spare seat's desktop gone: ``desktop.state`` joined in is NULL, and the row says what DRF says
    (the field's default, ""), not None."""
    from compute.classroom.api import SeatSerializer
    from compute.classroom.models import Seat

    world = rows.make_world("fast-uni", "fast-cs")
    rows_campus.grow_seats(world, 2)
    Seat.objects.filter(pk=Seat.objects.order_by("id").first().pk).update(desktop=None)
    seats = list(SeatSerializer.read_queryset(Seat.objects.order_by("id")))
    fast = SeatSerializer(seats, many=True).data
    drf = [serializers.ModelSerializer.to_representation(SeatSerializer(), seat) for seat in seats]
    assert fast == drf
    assert fast[0]["desktop_state"] == "" and fast[0]["desktop"] is None
    assert fast[1]["desktop_state"] == "stopped"
