#!/usr/bin/env bash
# The quick start behind `make run` (after scripts/setup.sh run): migrate, compile the
# translations, load the demo data, then run web server + Celery worker + Celery beat
# together under honcho (Procfile) until Ctrl-C, which stops every one of them and exits 0
# ("stopped"). The terminal shows one screen (URL, accounts, where the logs are); the steps'
# and the servers' output goes to .run/run.log.
#
# Environment: PORT (8000), DATABASE_URL (SQLite), CELERY_BROKER_URL (kombu filesystem
# transport), DEFAULT_HYPERVISOR_URI (test:///default), DEMO_PASSWORD (Demo@2026!).
# A local MariaDB / Redis / RabbitMQ named by those URLs is started when installed and not
# running (and stopped again on exit); a missing MySQL database is created (utf8mb4).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

export PORT=${PORT:-8000}
export DEMO_PASSWORD=${DEMO_PASSWORD:-Demo@2026!}
export CC_STATE="$RUN_DIR/started-by-run"
[ -x "$PY" ] || die "no .venv yet: run 'make run' (it runs scripts/setup.sh run first)"
mkdir -p "$RUN_DIR"

LOG="$RUN_DIR/run.log"
: >"$LOG"
STOPPING=0 HONCHO=
cleanup() {
  local rc=$?
  trap '' INT TERM
  if [ -n "$HONCHO" ] && kill -0 "$HONCHO" 2>/dev/null; then
    say "Stopping web server, worker and beat"
    kill -TERM "$HONCHO" 2>/dev/null || true
    wait "$HONCHO" 2>/dev/null || true
  fi
  scripts/services.sh stop >>"$LOG" 2>&1 || true
  if [ "$STOPPING" = 1 ]; then
    printf '\n%sCampusCloud stopped.%s (log: %s)\n' "$_B" "$_N" "$LOG"
    exit 0
  fi
  if [ "$rc" != 0 ]; then
    printf '%sCampusCloud stopped with an error (exit %s); the last lines of %s:%s\n' "$_R" "$rc" "$LOG" "$_N" >&2
    tail -n 20 "$LOG" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
# Ctrl-C (INT) or a polite TERM is how one stops the quick start: a clean stop, not a failure.
trap 'STOPPING=1; exit 0' INT TERM
# Run one step with its output in the log: `quietly "what it does" command...`.
quietly() {
  local what=$1
  shift
  say "$what"
  printf '\n==> %s\n' "$what" >>"$LOG"
  "$@" >>"$LOG" 2>&1
}

port_open 127.0.0.1 "$PORT" && die "127.0.0.1:$PORT is already in use (another 'make run'?); choose another with PORT=..."

# --- the services the environment names ---------------------------------------------
if [ -n "${DATABASE_URL:-}" ]; then
  case $(url_part "$DATABASE_URL" scheme) in
    mysql | mysql2 | mysqlgis | mysql-connector | mariadb)
      host=$(url_part "$DATABASE_URL" host) port=$(url_part "$DATABASE_URL" port)
      if is_local_host "$host" && [ "${port:-3306}" = 3306 ] && ! port_open 127.0.0.1 3306; then
        [ -x /usr/sbin/mariadbd ] || die "DATABASE_URL points at this machine, but no MySQL/MariaDB server runs or is installed (apt-get install mariadb-server)"
        quietly "Starting MariaDB" scripts/services.sh start mariadb
      fi
      quietly "Checking the MySQL database" scripts/services.sh create-db "$DATABASE_URL"
      ;;
  esac
fi
broker=${CELERY_BROKER_URL:-filesystem://}
case $broker in
  redis://* | rediss://*)
    host=$(url_part "$broker" host) port=$(url_part "$broker" port)
    if is_local_host "$host" && [ "${port:-6379}" = 6379 ] && ! port_open 127.0.0.1 6379; then
      command -v redis-server >/dev/null || die "CELERY_BROKER_URL points at this machine, but Redis neither runs nor is installed (apt-get install redis-server)"
      quietly "Starting Redis" scripts/services.sh start redis
    fi
    ;;
  amqp://* | pyamqp://*)
    host=$(url_part "$broker" host) port=$(url_part "$broker" port)
    if is_local_host "$host" && [ "${port:-5672}" = 5672 ] && ! port_open 127.0.0.1 5672; then
      command -v rabbitmq-server >/dev/null || die "CELERY_BROKER_URL points at this machine, but RabbitMQ neither runs nor is installed (apt-get install rabbitmq-server)"
      quietly "Starting RabbitMQ" scripts/services.sh start rabbitmq
    fi
    ;;
  filesystem://*) mkdir -p "$RUN_DIR/broker/queue" "$RUN_DIR/broker/control" "$RUN_DIR/broker/processed" ;;
esac

# libvirt's test:///default keeps its VMs inside the process that made them: the quick start's
# worker is one process (a pool of threads), or a desktop made by one worker child would be
# unknown to the next (stop, start and the periodic reconcile would say its VM is missing).
case ${DEFAULT_HYPERVISOR_URI:-test:///default} in
  test:*) export CELERY_WORKER_POOL=${CELERY_WORKER_POOL:-threads} CELERY_WORKER_CONCURRENCY=${CELERY_WORKER_CONCURRENCY:-4} ;;
esac

# --- database, translations, demo data ------------------------------------------------
quietly "Migrating the database" "$PY" manage.py migrate --noinput
quietly "Compiling translations" "$PY" manage.py compilemessages --ignore=.venv --ignore=node_modules -v 0
quietly "Loading the demo data (seed_demo)" "$PY" manage.py seed_demo

url="http://127.0.0.1:$PORT/"
cat <<EOF

${_B}CampusCloud is starting at ${url}${_N}   (Ctrl-C stops web server, worker and beat)

Demo logins, all with password: ${DEMO_PASSWORD}
  username                          role                              tenant
  sysadmin, secadmin, auditadmin    platform admins (three-role)      platform
  cs_admin                          tenant admin                      计算机学院 (cs)
  teacher1                          teacher of course CS101           cs
  student1 … student30              students on the CS101 roster      cs
  finance1                          finance                           cs
  auditor1                          auditor                           cs
  me_admin, teacher2, student31     tenant admin, teacher, student    机械学院 (me)
$(if [ -n "${DEMO_TOTP_SECRET:-}" ]; then echo "Accounts with a second factor use the TOTP secret in DEMO_TOTP_SECRET."; else echo "Accounts with a second factor are asked to enrol an authenticator app at first login."; fi)

Logs of the web server, worker and beat: ${LOG}   (tail -f to watch them)

EOF

# honcho gives each Procfile process its own session and stops them all (TERM, then KILL
# after 5 s) when it gets TERM: Ctrl-C reaches this script, whose trap sends it that TERM,
# waits for it, and stops the services we started.
printf '\n==> honcho (web, worker, beat)\n' >>"$LOG"
"$VENV/bin/honcho" -f Procfile start -p "$PORT" >>"$LOG" 2>&1 &
HONCHO=$!
wait "$HONCHO" || true
# honcho returned by itself (not Ctrl-C): one of the processes died; say so.
die "a server process stopped; see $LOG"
