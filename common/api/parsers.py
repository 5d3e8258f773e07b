"""Request parsers that refuse what the database cannot store.

JSON may spell lone UTF-16 surrogates ("\\ud800"), which decode to Python strings that no
UTF-8 database accepts; they are refused here as malformed input instead of failing deep
in a query.
"""

from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_surrogate(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _has_surrogate(data):
            raise ParseError(_("请求包含无效的 Unicode 字符。"))
        return data
