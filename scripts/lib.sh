# shellcheck shell=bash disable=SC2034
# Helpers shared by scripts/setup.sh, services.sh, run.sh and test.sh. Source it.
# Uses only bash and coreutils: a fresh Debian minbase has no procps (ps/pgrep) or ss.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

if [ -t 1 ]; then _B=$'\033[1m' _G=$'\033[32m' _Y=$'\033[33m' _R=$'\033[31m' _N=$'\033[0m'
else _B='' _G='' _Y='' _R='' _N=''; fi

say()  { printf '%s==> %s%s\n' "$_B" "$*" "$_N"; }
ok()   { printf '%s    %s%s\n' "$_G" "$*" "$_N"; }
warn() { printf '%swarning: %s%s\n' "$_Y" "$*" "$_N" >&2; }
die()  { printf '%serror: %s%s\n' "$_R" "$*" "$_N" >&2; exit 1; }

is_root()  { [ "$(id -u)" = 0 ]; }
# True when we can act as root: we are root, or password-less sudo works.
can_root() { is_root || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; }
# as_root CMD...: run CMD as root (directly, or through `sudo -n`).
as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n "$@"
  else echo "error: '$*' needs root (run as root or give this user password-less sudo)" >&2; return 1
  fi
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# pid_alive PIDFILE: the process named in PIDFILE exists (works for root's pids as a user too).
pid_alive() {
  [ -s "$1" ] || return 1
  local pid; pid=$(tr -dc 0-9 <"$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ]
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s; false if it never succeeded.
wait_until() {
  local n=$(( $1 * 5 )); shift
  while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.2; n=$((n - 1)); done
  return 1
}

# kill_wait PID [SECONDS]: SIGTERM, wait, then SIGKILL.
kill_wait() {
  local pid=$1 secs=${2:-10}
  [ -d "/proc/$pid" ] || return 0
  as_root kill -TERM "$pid" 2>/dev/null || true
  wait_until "$secs" test ! -d "/proc/$pid" && return 0
  as_root kill -KILL "$pid" 2>/dev/null || true
  wait_until 5 test ! -d "/proc/$pid" || true
}

# url_part URL FIELD: scheme|host|port|user|password|name of a URL, parsed by Python's urllib.
url_part() {
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import unquote, urlsplit
u = urlsplit(sys.argv[1]); f = sys.argv[2]
v = {"scheme": u.scheme, "host": u.hostname or "", "port": u.port or "",
     "user": unquote(u.username or ""), "password": unquote(u.password or ""),
     "name": unquote(u.path.lstrip("/").split("?")[0])}[f]
print(v)
PY
}

is_local_host() { case "$1" in 127.0.0.1|localhost|::1|'') return 0 ;; *) return 1 ;; esac; }
