"""libvirt's errors as DriverError: which codes are permanent, which a retry can heal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import libvirt

from ..base import DriverError, ErrorCode

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_NWFILTER,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_NODE_DEVICE,
    libvirt.VIR_ERR_NO_SECRET,
}
_UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED, libvirt.VIR_ERR_NO_DOMAIN_METADATA}
_INVALID_SPEC = {
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SOURCE,
    libvirt.VIR_ERR_NO_TARGET,
}
_AUTH = {
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_CANCELLED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
    libvirt.VIR_ERR_ACCESS_DENIED,
}
_EXISTS = {libvirt.VIR_ERR_DOM_EXIST, libvirt.VIR_ERR_STORAGE_VOL_EXIST, libvirt.VIR_ERR_NETWORK_EXIST}
# Errors of the connection itself: the daemon went away, the socket broke.
_CONNECTION = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC}
# Permanent errors whose code says it all, checked in this order.
_PERMANENT = (
    (_NOT_FOUND, ErrorCode.NOT_FOUND),
    (_UNSUPPORTED, ErrorCode.UNSUPPORTED),
    (_AUTH, ErrorCode.AUTH),
    (_EXISTS, ErrorCode.EXISTS),
    (_INVALID_SPEC, ErrorCode.INVALID_SPEC),
    ({libvirt.VIR_ERR_OPERATION_INVALID}, ErrorCode.INVALID_STATE),
)


def _is_connection_error(exc: libvirt.libvirtError) -> bool:
    code, domain = exc.get_error_code(), exc.get_error_domain()
    if code in _CONNECTION:
        return True
    # "Cannot recv data", "client socket is closed", "unable to connect to server": RPC layer.
    return domain in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE) and code in (
        libvirt.VIR_ERR_SYSTEM_ERROR,
        libvirt.VIR_ERR_INTERNAL_ERROR,
        libvirt.VIR_ERR_OPERATION_FAILED,
    )


def _is_certificate_error(exc: libvirt.libvirtError) -> bool:
    """A qemu+tls connection refused over certificates: the host's is not trusted by our CA (or is for another
    name, or expired: libvirt says "Failed to verify peer's certificate"), or our CA/client files are missing."""
    if exc.get_error_domain() not in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE):
        return False
    return "certificate" in (exc.get_error_message() or "").lower()


def _is_firewall_race(exc: libvirt.libvirtError) -> bool:
    """The host's firewall commands failed while libvirt applied a NIC's filter rules.

    With the nftables back end of ebtables/iptables (Debian 12's default), a rule change that
    meets another one on the same host (the nwfilter rebuild of a security group, the host
    agent's elastic IP rules) can fail with "RULE_DELETE failed" or "Could not process rule";
    the same call a moment later succeeds. A host without the commands fails every retry and
    ends as an error all the same.
    """
    return exc.get_error_domain() in (libvirt.VIR_FROM_FIREWALL, libvirt.VIR_FROM_NWFILTER) and (
        exc.get_error_code() == libvirt.VIR_ERR_INTERNAL_ERROR
    )


def map_error(exc: libvirt.libvirtError, what: str) -> DriverError:
    """One DriverError for a libvirtError, with ``permanent`` set by whether a retry can help."""
    code = exc.get_error_code()
    message = f"{what}: {exc.get_error_message() or exc}"
    if _is_certificate_error(exc):
        return DriverError(message, permanent=True, code=ErrorCode.CERTIFICATE)
    for codes, error_code in _PERMANENT:
        if code in codes:
            return DriverError(message, permanent=True, code=error_code)
    if code in (libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_ERR_AGENT_UNRESPONSIVE):
        # Mostly "cannot acquire state change lock": another job holds the domain.
        return DriverError(message, permanent=False, code=ErrorCode.BUSY)
    if code == libvirt.VIR_ERR_NO_CONNECT and "no connection driver" in message:
        return DriverError(message, permanent=True, code=ErrorCode.INVALID_SPEC)
    if _is_connection_error(exc):
        return DriverError(message, permanent=False, code=ErrorCode.UNREACHABLE)
    if _is_firewall_race(exc):
        return DriverError(message, permanent=False, code=ErrorCode.BUSY)
    return DriverError(message, permanent=True, code=ErrorCode.ERROR)


@contextlib.contextmanager
def tolerating(*codes: int) -> Iterator[None]:
    """Swallow a libvirtError with one of ``codes`` (the object is gone already, or stopped meanwhile)."""
    try:
        yield
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in codes:
            raise
