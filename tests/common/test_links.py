"""pk_url: one reverse() for a page's rows gives each row the URL reverse() would."""

from django.urls import reverse

from common.links import pk_url


def test_pk_url_gives_what_reverse_gives_for_every_pk():
    seat_action = pk_url("classroom:seat-action")
    console = pk_url("classroom:console")
    for pk in (1, 7, 10, 98, 9_876_543_210, 123_456_789_012):
        assert seat_action(pk) == reverse("classroom:seat-action", args=[pk])
        assert console(pk) == reverse("classroom:console", args=[pk])


def test_pk_url_with_further_arguments_gives_what_reverse_gives():
    start = pk_url("compute:desktop-action", "start")
    for pk in (1, 7, 10, 98, 123_456_789_012):
        assert start(pk) == reverse("compute:desktop-action", args=[pk, "start"])
