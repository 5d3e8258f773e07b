"""The error codes of the portal's own endpoints: what API clients read in {"code", ...}, so values never change."""

from enum import StrEnum


class PortalError(StrEnum):
    INVALID_CREDENTIALS = "invalid_credentials"
