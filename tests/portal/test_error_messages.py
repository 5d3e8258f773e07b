"""Driver errors reach the user in their language, the raw text behind a 详情 toggle (#13.12)."""

from django.template.loader import render_to_string
from django.utils import translation


def test_a_raw_libvirt_error_is_said_in_chinese_with_the_raw_text_behind_details():
    with translation.override("zh-hans"):
        html = render_to_string("portal/_error.html", {"text": "Not enough free space in pool 'default'"})

    assert "存储空间不足" in html
    assert "<details" in html and "Not enough free space in pool" in html.split("<details")[1]


def test_a_message_already_in_chinese_is_kept_without_a_toggle():
    with translation.override("zh-hans"):
        html = render_to_string("portal/_error.html", {"text": "桌面已关机。"})

    assert "桌面已关机。" in html and "<details" not in html


def test_an_unknown_driver_error_still_reads_in_the_users_language():
    with translation.override("en"):
        html = render_to_string("portal/_error.html", {"text": "virDomainCreate: some odd failure"})

    assert "The virtualization platform reported an error" in html and "some odd failure" in html
