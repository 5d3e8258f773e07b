"""The real components the tests drive: one module each, loaded as plugins by tests/conftest.py.

- ``markers``: every test that needs a real component carries its marker (libvirt, vcsim, browser,
  worker); a test that touches one without it fails.
- ``worker``: a real Celery worker on the test database (``celery_worker``, ``start_worker``).
- ``asgi``: the portal under uvicorn (HTTP + WebSockets) on a free loopback port (``asgi_server``).
- ``browser``: Debian's Chromium through Playwright on pytest-django's live server (``page``, ``login``).
- ``qemu``: the real libvirtd: this test process's storage pool and golden qcow2 (``qemu_pool``,
  ``qemu_env``), a breakable path to the daemon (``LibvirtPath``).
- ``hostnet``: libvirt networks and nwfilters, dnsmasq's hosts files and the host firewall that the
  network tests make under a name prefix of their own (``qemu_prefix``) and read back.
- ``vcsim``: private vCenter simulators (``Vcsim``, and ``vcsim`` for a test module).
- ``testbed``: the multi-host testbed of scripts/testbed.sh (``testbed``: hosts in their own
  namespaces, each with its own libvirtd).
- ``guest``: testbed desktops that run a real tiny OS (``guest_os``: Debian's cloud kernel and a
  busybox initramfs): ``guest_env``, ``guest_log``, ``wait_for_guest``, ``guest_address``, ``guest_ping``.
- ``processes`` and ``waiting``: what those share: the worker's database URL, free ports, stopping a
  process, waiting for a row to change.
"""
