#!/usr/bin/env bash
# Install what `make run` or `make test` needs and is missing; idempotent, and quick when
# nothing changed (stamps hold the hashes of the requirement files and the npm lockfile).
#
#   scripts/setup.sh run    system libraries, .venv (requirements-dev.txt), node_modules
#   scripts/setup.sh test   the same, plus MariaDB, Redis, libvirtd + QEMU, Chromium, Go + govmomi, slapd,
#                           iproute2 (the multi-host testbed), a kernel and busybox (its guest OS)
#   scripts/setup.sh sso    the run profile plus slapd (make sso-demo)
#
# System packages come from apt-get when we are root or have password-less sudo; otherwise
# the script prints the packages to install and exits 1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

profile=${1:-run}
case $profile in run | test | sso) ;; *) die "usage: $0 run|test|sso" ;; esac

# --- (a) system packages -------------------------------------------------------------
# mysqlclient: libmariadb-dev pkg-config gcc python3-dev; libvirt-python: libvirt-dev;
# compilemessages: gettext; WeasyPrint: Pango + a CJK font; zoneinfo: tzdata; python-ldap
# (campus LDAP sign-in): libldap-dev libsasl2-dev.
pkgs=(libmariadb-dev pkg-config gcc python3-dev libvirt-dev gettext tzdata ca-certificates
  fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libldap-dev libsasl2-dev)
command -v npm >/dev/null || pkgs+=(nodejs npm)
if [ "$profile" = test ]; then
  # NOT libvirt-daemon-system: on Debian 12 it pulls in systemd-sysv; services.sh does its job.
  pkgs+=(mariadb-server redis-server
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-network
    libvirt-daemon-config-nwfilter libvirt-clients qemu-system-x86 qemu-utils
    dnsmasq-base iptables ebtables chromium poppler-utils golang-go golang-github-vmware-govmomi-dev
    iproute2 # the multi-host testbed (scripts/testbed.sh): ip netns, bridges, veth pairs
    linux-image-cloud-amd64 busybox-static # the testbed desktops' tiny guest OS (tests/harness/guest_os.py)
    slapd ldap-utils)  # slapd: the tests start their own directory (tests/sso/slapd.py), never the system one
fi
[ "$profile" = sso ] && pkgs+=(slapd ldap-utils)
venv_ok() { [ -x "$PY" ] && "$PY" -c 'import sys' 2>/dev/null; }
venv_ok || python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)

missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)
for p in "${pkgs[@]}"; do
  grep -qxF "$p ii " <<<"$installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! can_root; then
    echo "These Debian packages are missing and installing them needs root:" >&2
    echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  say "Installing system packages: ${missing[*]}"
  apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q)
  as_root "${apt[@]}" update
  as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
fi

# --- (b) Python virtual environment --------------------------------------------------
if ! venv_ok; then
  say "Creating .venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
fi
req_hash=$( { cat requirements.txt requirements-dev.txt; "$PY" -VV; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.stamp-requirements" 2>/dev/null)" != "$req_hash" ]; then
  say "Installing Python packages (requirements-dev.txt)"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -q -r requirements-dev.txt
  echo "$req_hash" >"$VENV/.stamp-requirements"
fi

# --- (c) front-end assets (served from node_modules by the portal) -------------------
lock_hash=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat node_modules/.stamp-lock 2>/dev/null)" != "$lock_hash" ]; then
  say "Installing front-end assets (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" >node_modules/.stamp-lock
fi

# --- (d) test-only tools -------------------------------------------------------------
if [ "$profile" = test ] && [ -x scripts/vcsim.sh ]; then
  scripts/vcsim.sh build
fi
ok "set-up ($profile) complete"
