"""vSphere faults and transport errors as DriverError: which are permanent, which a retry can heal."""

from __future__ import annotations

import http.client
import ssl
import xml.etree.ElementTree as ET

from pyVmomi import vim, vmodl

from ..base import DriverError, ErrorCode

# (fault types, permanent, code), checked in this order.
_FAULTS = (
    (vim.fault.InvalidLogin | vim.fault.NotAuthenticated | vim.fault.NoPermission, True, ErrorCode.AUTH),
    (vim.fault.TaskInProgress, False, ErrorCode.BUSY),
    (vim.fault.Timedout, False, ErrorCode.TIMEOUT),
    (vim.fault.ToolsUnavailable, True, ErrorCode.INVALID_STATE),
    (vim.fault.InvalidState, True, ErrorCode.INVALID_STATE),  # InvalidPowerState included
    (vim.fault.NotFound | vmodl.fault.ManagedObjectNotFound, True, ErrorCode.NOT_FOUND),
    (vim.fault.DuplicateName | vim.fault.AlreadyExists, True, ErrorCode.EXISTS),
    (vim.fault.InsufficientResourcesFault, True, ErrorCode.INSUFFICIENT_RESOURCES),
    (
        vim.fault.HostConnectFault | vmodl.fault.HostCommunication | vmodl.fault.RequestCanceled,
        False,
        ErrorCode.UNREACHABLE,
    ),
    (
        vmodl.fault.NotSupported | vmodl.fault.NotImplemented | vmodl.fault.MethodNotFound,
        True,
        ErrorCode.UNSUPPORTED,
    ),
    (
        vmodl.fault.InvalidArgument
        | vmodl.fault.InvalidRequest
        | vmodl.fault.InvalidType
        | vim.fault.InvalidDeviceSpec
        | vim.fault.VmConfigFault,
        True,
        ErrorCode.INVALID_SPEC,
    ),
    # vpxd's catch-all: often a passing backend problem, so worth a retry.
    (vmodl.fault.SystemError, False, ErrorCode.ERROR),
    # A TLS handshake that fails on protocol grounds (e.g. https to an http port) will not heal.
    (ssl.SSLError, True, ErrorCode.INVALID_SPEC),
    (TimeoutError, False, ErrorCode.TIMEOUT),
    (OSError | http.client.HTTPException | ET.ParseError, False, ErrorCode.UNREACHABLE),
)


def map_fault(exc: BaseException, what: str) -> DriverError:
    """One DriverError for a vSphere fault or a transport error."""
    if isinstance(exc, DriverError):
        return exc
    detail = getattr(exc, "msg", "") or str(exc) or type(exc).__name__
    if isinstance(exc, vim.fault.InvalidPowerState):
        detail = f"the VM is {exc.existingState}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DriverError(
            f"{what}: the server's TLS certificate is not trusted ({detail}); "
            "set verify_ssl=False for a self-signed one",
            permanent=True,
            code=ErrorCode.AUTH,
        )
    message = f"{what}: {type(exc).__name__}: {detail}"
    for types, permanent, code in _FAULTS:
        if isinstance(exc, types):
            return DriverError(message, permanent=permanent, code=code)
    return DriverError(message, permanent=True, code=ErrorCode.ERROR)
