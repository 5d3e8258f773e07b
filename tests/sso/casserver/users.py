"""The test CAS server's users: a JSON file {username: {"password": ..., "attributes": {...}}}."""

import json

from cas_server.auth import AuthUser
from django.conf import settings


def _users() -> dict:
    with open(settings.CAS_USERS_FILE, encoding="utf-8") as handle:
        return json.load(handle)


class FileAuthUser(AuthUser):
    def __init__(self, username):
        self.record = _users().get(username)
        super().__init__(username)

    def test_password(self, password):
        return self.record is not None and password == self.record["password"]

    def attributs(self):
        return dict(self.record["attributes"]) if self.record else {}
