#!/usr/bin/env bash
# The test suite behind `make test` and `make test-fast` (after scripts/setup.sh test): start what
# the tests need and is not running, run pytest on MariaDB, then stop only what this run started,
# also when the tests fail or on Ctrl-C. Exits with pytest's status; "no tests collected" (5)
# counts as a failure.
#
#   scripts/test.sh [PYTEST ARGS...]          every test: MariaDB, Redis, libvirtd + QEMU with the
#                                             `default` network, the vCenter simulator, Chromium
#   scripts/test.sh --fast [PYTEST ARGS...]   the tests without a real component (no libvirt, vcsim,
#                                             browser, worker, testbed or sso marker) and without the
#                                             API fuzz walk (fuzz): MariaDB and Redis only, on a
#                                             test database kept between fast runs
#
# Exports to pytest: DATABASE_URL (MariaDB test account, a database named after the checkout:
# cc_<directory>; override with TEST_DATABASE_URL), CELERY_BROKER_URL=redis://127.0.0.1:6379/15
# (TEST_BROKER_DB changes 15: each test process takes the databases below it, so two checkouts
# testing at once give 15 and 12), LIBVIRT_QEMU_URI=qemu:///system, VCSIM_URL,
# CHROMIUM_PATH=/usr/bin/chromium; CI passes through.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

fast=false
if [ "${1:-}" = --fast ]; then
  fast=true
  shift
fi

[ -x "$PY" ] || die "no .venv yet: run 'make test' (it runs scripts/setup.sh test first)"
mkdir -p "$RUN_DIR"
export CC_STATE="$RUN_DIR/started-by-test"

cleanup() {
  local rc=$?
  trap '' INT TERM
  scripts/services.sh stop || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Starting the services the tests need"
if $fast; then
  scripts/services.sh start mariadb redis
else
  scripts/services.sh start mariadb redis libvirt vcsim
fi

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  export DATABASE_URL=$TEST_DATABASE_URL
else
  # Each checkout its own database: two checkouts on one machine never share (or drop) each other's.
  account=$(scripts/services.sh test-db)
  export DATABASE_URL="${account%/*}/cc_$(basename "$ROOT" | tr -c 'a-zA-Z0-9\n' _)"
fi
broker_db=${TEST_BROKER_DB:-15}
export CELERY_BROKER_URL=redis://127.0.0.1:6379/$broker_db
export LIBVIRT_QEMU_URI=qemu:///system
export CHROMIUM_PATH=/usr/bin/chromium
if $fast; then
  unset VCSIM_URL
elif [ -x scripts/vcsim.sh ] && vc=$(scripts/vcsim.sh url 2>/dev/null); then
  export VCSIM_URL=${vc#VCSIM_URL=}
else
  warn "no vCenter simulator: VCSIM_URL is not set"
fi
unset DJANGO_ENV DEFAULT_HYPERVISOR_URI CELERY_RESULT_BACKEND
# Bytecode caches (__pycache__/, ignored by git) halve the start of every test process: without
# them each one compiles the project and rewrites the tests' asserts again.
unset PYTHONDONTWRITEBYTECODE

say "Compiling translations"
"$PY" manage.py compilemessages --ignore=.venv --ignore=node_modules -v 0

# Start from empty test brokers: a worker killed in an earlier run leaves unacknowledged
# messages that Redis would otherwise deliver again into this run.
for db in "$broker_db" $((broker_db - 1)) $((broker_db - 2)); do "$PY" -c "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()" "redis://127.0.0.1:6379/$db"; done

# Two test processes on the two cores (PYTEST_WORKERS=0 runs in one); a test file stays in one
# process, so its module fixtures (libvirt pools, simulators) are made once.
workers=${PYTEST_WORKERS:-2}
xdist=()
[ "$workers" != 0 ] && xdist=(-n "$workers" --dist loadfile)

args=()
if $fast; then
  # The marked tests need a real component (tests/harness/markers.py); the rest share the test
  # database with the previous fast run as long as the migrations (and the packages) are the same.
  args+=(-m "not libvirt and not vcsim and not browser and not worker and not testbed and not sso and not fuzz" --reuse-db)
  schema=$(find . -path ./.venv -prune -o -path ./node_modules -prune -o -path '*/migrations/*.py' -print |
    LC_ALL=C sort | xargs cat requirements.txt | sha256sum | cut -d' ' -f1)
  stamp="$RUN_DIR/test-fast-db.$(printf '%s %s' "$DATABASE_URL" "$workers" | sha256sum | cut -c1-12)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$schema" ] || args+=(--create-db)
  rm -f "$stamp"  # a run stopped while migrating leaves a database the next one must not trust
fi

say "Running the tests (DATABASE_URL=${DATABASE_URL%%:*}://…@127.0.0.1, VCSIM_URL=${VCSIM_URL:-unset})"
rc=0
# --durations: keep an eye on the slow tests (the whole run has a budget of 20 minutes on 2 cores).
"$VENV/bin/pytest" "${xdist[@]}" --durations=15 "${args[@]}" "$@" || rc=$?
if $fast && { [ "$rc" = 0 ] || [ "$rc" = 1 ]; }; then
  echo "$schema" >"$stamp"  # the test databases exist and are migrated: the next fast run keeps them
fi
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: counting that as a failure" >&2
  rc=1
fi
exit "$rc"
