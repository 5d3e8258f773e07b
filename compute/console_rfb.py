"""The RFB (VNC) handshakes of the console proxy: it authenticates to QEMU with the ticket's one-time VNC
password, and offers the browser a session without authentication (the single-use ticket was its key).

QEMU's VNC listens on the host's management address with a password that each console ticket sets
(libvirt ``passwd`` with ``passwdValidTo`` = the ticket's expiry), so nobody on the management
network opens a console without the portal, and the browser never learns the host or the password.
RFB 3.8 (RFC 6143) towards QEMU; 3.3, 3.7 or 3.8 towards the browser (noVNC speaks 3.8).
"""

from __future__ import annotations

import asyncio
import secrets
import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VERSION = b"RFB 003.008\n"
SECURITY_NONE = 1
SECURITY_VNC = 2
PASSWORD_LENGTH = 8  # VNC authentication uses at most 8 characters


class RfbError(Exception):
    """The VNC server refused us, or spoke something that is not RFB."""


def vnc_password() -> str:
    """A fresh one-time VNC password (8 characters, what VNC authentication can carry)."""
    return secrets.token_urlsafe(6)[:PASSWORD_LENGTH]


def _reverse_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def vnc_auth_response(challenge: bytes, password: str) -> bytes:
    """DES of the 16-byte challenge keyed by the password, each key byte's bits reversed (RFB's VNC auth)."""
    key = bytes(_reverse_bits(b) for b in password.encode()[:PASSWORD_LENGTH].ljust(PASSWORD_LENGTH, b"\0"))
    # Triple DES with the same key three times is single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # noqa: S305 - the protocol's own cipher
    return encryptor.update(challenge) + encryptor.finalize()


async def _reason(reader: asyncio.StreamReader) -> str:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    return (await reader.readexactly(min(length, 4096))).decode(errors="replace")


async def _security_result(reader: asyncio.StreamReader) -> None:
    (result,) = struct.unpack(">I", await reader.readexactly(4))
    if result != 0:
        raise RfbError(f"VNC authentication failed: {await _reason(reader)}")


async def server_authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str) -> None:
    """Handshake with QEMU up to the point where it waits for ClientInit; raises RfbError when refused."""
    try:
        banner = await reader.readexactly(12)
        if not banner.startswith(b"RFB 003."):
            raise RfbError(f"not an RFB server: {banner!r}")
        writer.write(VERSION)
        await writer.drain()
        (count,) = await reader.readexactly(1)
        if count == 0:
            raise RfbError(f"VNC server refused the connection: {await _reason(reader)}")
        offered = set(await reader.readexactly(count))
        if SECURITY_VNC in offered and password:
            writer.write(bytes([SECURITY_VNC]))
            challenge = await reader.readexactly(16)
            writer.write(vnc_auth_response(challenge, password))
        elif SECURITY_NONE in offered:
            writer.write(bytes([SECURITY_NONE]))
        else:
            raise RfbError(f"no security type we can use: {sorted(offered)}")
        await writer.drain()
        await _security_result(reader)
    except asyncio.IncompleteReadError as exc:
        raise RfbError("the VNC server closed the connection during the handshake") from exc


async def browser_handshake(reader: asyncio.StreamReader, send) -> None:
    """Be the RFB server towards the browser up to ClientInit, with no authentication.

    ``reader`` holds what the browser sends; ``send(bytes)`` sends to it.
    """
    await send(VERSION)
    try:
        version = await reader.readexactly(12)
        if version == b"RFB 003.003\n":
            await send(struct.pack(">I", SECURITY_NONE))  # 3.3: the server decides, no result follows
            return
        if not version.startswith(b"RFB 003."):
            raise RfbError(f"not an RFB client: {version!r}")
        await send(bytes([1, SECURITY_NONE]))
        (chosen,) = await reader.readexactly(1)
        if chosen != SECURITY_NONE:
            raise RfbError(f"the client chose security type {chosen}")
        if version >= b"RFB 003.008\n":
            await send(struct.pack(">I", 0))
    except asyncio.IncompleteReadError as exc:
        raise RfbError("the browser closed the connection during the handshake") from exc
