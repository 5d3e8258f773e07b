"""For console proxy tests that need no QEMU: a stand-in VNC server that speaks the start of RFB 3.8
as QEMU does for the proxy (which authenticates itself, compute/console_rfb.py), then idles; and
a way to run their coroutines.

The real QEMU path is tested in tests/classroom/test_console.py (libvirt) and on the testbed.
"""


async def idle_rfb_server(reader, writer) -> None:
    """Use with ``asyncio.start_server``: version, the security type "none" offered and accepted,
    then a screen where nothing happens."""
    writer.write(b"RFB 003.008\n")
    await writer.drain()
    await reader.readexactly(12)  # the proxy's version
    writer.write(b"\x01\x01")  # one security type: None
    await writer.drain()
    await reader.readexactly(1)  # the proxy picks it
    writer.write(b"\x00\x00\x00\x00")  # SecurityResult: OK
    await writer.drain()
    await reader.read(100)


def run_coroutine(coro):
    """``asyncio.run(coro)`` in a thread of its own: a test process that ran Playwright's sync API
    (the browser tests, in the same xdist process) keeps an event loop on its main thread, where
    ``asyncio.run`` refuses to start another."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
