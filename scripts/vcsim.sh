#!/usr/bin/env bash
# Build, start and stop the vCenter simulator (tools/vcsim) used by the vCenter driver's tests.
#
#   scripts/vcsim.sh build   compile tools/vcsim/bin/vcsim offline (only when main.go changed)
#   scripts/vcsim.sh start   build if needed, start one shared instance in the background,
#                            print VCSIM_URL=http://127.0.0.1:PORT/sdk  (eval "$(scripts/vcsim.sh start)")
#   scripts/vcsim.sh stop    stop the shared instance
#   scripts/vcsim.sh url     print VCSIM_URL=... of the running instance (exit 1 when none)
#
# Environment:
#   VCSIM_PORT (0: free) port of the shared instance, on 127.0.0.1
#   VCSIM_VMS  (4)       VMs per resource pool; with the default inventory (1 datacenter,
#                        1 cluster of 3 hosts, no standalone host) that is the VM count.
#                        Plus one powered-off template, "template-linux".
#   VCSIM_USER, VCSIM_PASSWORD   when set, the only account that may log in; otherwise any
#                        non-empty user and password are accepted
#   VCSIM_ARGS           extra flags for the binary (see `tools/vcsim/bin/vcsim -h`)
#
# The shared instance stays small on purpose: tests that need a big inventory (the
# 300-VM listing and takeover tests) start a private instance of the same binary with
# `-vm 300 -l 127.0.0.1:0` (it prints its URL once it serves: ~1.5 s for 300 VMs, ~1.8 s
# for 1,000 on this 2-core machine), so they do not depend on what other tests did to
# the shared one. tests/compute/drivers/support.py has a Vcsim helper that does this.
#
# Debian packages govmomi as a GOPATH library (golang-github-vmware-govmomi-dev), so the
# build runs in GOPATH mode with no network: a temp GOPATH whose src/ holds a symlink to
# tools/vcsim, with /usr/share/gocode behind it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tools/vcsim"
BIN="$SRC/bin/vcsim"
STAMP="$SRC/bin/.main.sha256"
RUN="$ROOT/.run"
PIDFILE="$RUN/vcsim.pid"
LOG="$RUN/vcsim.log"
PORT="${VCSIM_PORT:-0}"  # 0: a free port, so a second checkout on the machine does not collide
VMS="${VCSIM_VMS:-4}"
PKG=campuscloud/vcsim

need_build() {
  [ -x "$BIN" ] || return 0
  [ -f "$STAMP" ] || return 0
  [ "$(sha256sum "$SRC/main.go" | cut -d' ' -f1)" != "$(cat "$STAMP")" ]
}

build() {
  need_build || return 0
  command -v go >/dev/null || { echo "vcsim.sh: go not found (apt-get install golang-go golang-github-vmware-govmomi-dev)" >&2; exit 1; }
  [ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || {
    echo "vcsim.sh: govmomi missing (apt-get install golang-github-vmware-govmomi-dev)" >&2; exit 1; }
  local gopath status=0
  gopath="$(mktemp -d)"
  mkdir -p "$gopath/src/$(dirname "$PKG")" "$SRC/bin"
  ln -s "$SRC" "$gopath/src/$PKG"
  (cd "$gopath/src/$PKG" && GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOPROXY=off \
     GOFLAGS= GOCACHE="${GOCACHE:-$HOME/.cache/go-build}" go build -o "$BIN" "$PKG") >&2 || status=$?
  rm -rf "$gopath"
  [ "$status" -eq 0 ] || { echo "vcsim.sh: build failed" >&2; exit "$status"; }
  sha256sum "$SRC/main.go" | cut -d' ' -f1 > "$STAMP"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

url() {
  running || { echo "vcsim.sh: not running" >&2; return 1; }
  echo "VCSIM_URL=$(head -n1 "$RUN/vcsim.url")"
}

start() {
  build
  mkdir -p "$RUN"
  if running; then url; return; fi
  : > "$RUN/vcsim.url"
  local auth=()
  [ -n "${VCSIM_USER:-}" ] && auth=(-username "$VCSIM_USER" -password "${VCSIM_PASSWORD:-}")
  # shellcheck disable=SC2086
  setsid "$BIN" -l "127.0.0.1:$PORT" -vm "$VMS" "${auth[@]}" ${VCSIM_ARGS:-} >"$RUN/vcsim.url" 2>"$LOG" </dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 300); do
    if [ -s "$RUN/vcsim.url" ]; then url; return; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.1
  done
  echo "vcsim.sh: simulator did not start; see $LOG" >&2
  tail -n 20 "$LOG" >&2 || true
  stop >/dev/null
  exit 1
}

stop() {
  if running; then
    local pid; pid="$(cat "$PIDFILE")"
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDFILE" "$RUN/vcsim.url"
  echo "vcsim stopped" >&2
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 build|start|stop|url" >&2; exit 2 ;;
esac
