#!/usr/bin/env bash
# Start the local services CampusCloud uses, and stop again only the ones we started.
#
#   scripts/services.sh start [mariadb] [redis] [rabbitmq] [libvirt] [vcsim]
#         start each named service that is not running yet (default: mariadb redis libvirt vcsim)
#         and record it in the state file; one that already runs is left alone and not recorded.
#   scripts/services.sh stop       stop what the state file records (reverse order), clear it
#   scripts/services.sh status     show what is up
#   scripts/services.sh test-db    make sure the MariaDB test account exists; print its DATABASE_URL
#   scripts/services.sh create-db URL   CREATE DATABASE IF NOT EXISTS for a mysql:// URL (utf8mb4)
#
# State file: $CC_STATE (default .run/started-services); run.sh and test.sh each use their own.
# libvirt: libvirtd + virtlogd on qemu:///system without systemd, and its `default` network.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
mkdir -p "$RUN_DIR"
STATE=${CC_STATE:-$RUN_DIR/started-services}
QEMU_URI=qemu:///system
TEST_DB_USER=campuscloud TEST_DB_PASSWORD=campuscloud

record() { grep -qx "$1" "$STATE" 2>/dev/null || echo "$1" >>"$STATE"; }

# --- MariaDB -----------------------------------------------------------------------------
MARIADB_PID=/run/mysqld/mysqld.pid
mariadb_up() { port_open 127.0.0.1 3306; }
start_mariadb() {
  if mariadb_up; then ok "MariaDB already running on 127.0.0.1:3306"; return; fi
  [ -x /usr/sbin/mariadbd ] || die "MariaDB is not installed (scripts/setup.sh test installs mariadb-server)"
  say "Starting MariaDB"
  as_root install -d -o mysql -g mysql -m 0755 /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  fi
  # Match by pid file, never by program name: another mariadbd (a container's host, a
  # chroot's parent) may be visible in /proc and is none of our business.
  as_root start-stop-daemon --start --oknodo --background --pidfile "$MARIADB_PID" \
    --exec /usr/sbin/mariadbd --output "$RUN_DIR/mariadb.log" -- --user=mysql --pid-file="$MARIADB_PID"
  record mariadb
  wait_until 60 mariadb_up || die "MariaDB did not start within 60 s (see $RUN_DIR/mariadb.log)"
  ok "MariaDB up"
}
stop_mariadb() {
  say "Stopping MariaDB"
  if pid_alive "$MARIADB_PID"; then kill_wait "$(cat "$MARIADB_PID")" 60; fi
}

# Run SQL (stdin) as MariaDB's root: over TCP with an empty password where that works (a
# developer machine), else through the socket as the OS root (unix_socket auth, Debian's default).
mysql_root() {
  if mariadb -uroot -h127.0.0.1 -P3306 -e 'SELECT 1' >/dev/null 2>&1; then
    mariadb -uroot -h127.0.0.1 -P3306 "$@"
  else
    as_root mariadb -uroot "$@"
  fi
}

# The tests log in as a dedicated account (password auth over TCP works the same on every
# machine, whatever the root account uses). Django's test runner creates test_campuscloud*.
test_db() {
  mariadb_up || die "MariaDB is not running on 127.0.0.1:3306 (scripts/services.sh start mariadb)"
  if ! mariadb -u"$TEST_DB_USER" -p"$TEST_DB_PASSWORD" -h127.0.0.1 -P3306 -e 'SELECT 1' >/dev/null 2>&1; then
    say "Creating the MariaDB test account '$TEST_DB_USER'" >&2
    mysql_root <<SQL
CREATE USER IF NOT EXISTS '$TEST_DB_USER'@'localhost' IDENTIFIED BY '$TEST_DB_PASSWORD';
CREATE USER IF NOT EXISTS '$TEST_DB_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_DB_PASSWORD';
ALTER USER '$TEST_DB_USER'@'localhost' IDENTIFIED BY '$TEST_DB_PASSWORD';
ALTER USER '$TEST_DB_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_DB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$TEST_DB_USER'@'localhost';
GRANT ALL PRIVILEGES ON *.* TO '$TEST_DB_USER'@'127.0.0.1';
SQL
  fi
  # Django's date truncation in Asia/Shanghai needs MariaDB's named time zones (CONVERT_TZ).
  local n
  n=$(mariadb -N -u"$TEST_DB_USER" -p"$TEST_DB_PASSWORD" -h127.0.0.1 -P3306 \
    -e 'SELECT COUNT(*) FROM mysql.time_zone_name' 2>/dev/null || echo 0)
  if [ "${n:-0}" = 0 ] && [ -d /usr/share/zoneinfo ]; then
    say "Loading time zone tables into MariaDB" >&2
    mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null | mysql_root mysql
  fi
  echo "mysql://$TEST_DB_USER:$TEST_DB_PASSWORD@127.0.0.1:3306/campuscloud"
}

# CREATE DATABASE IF NOT EXISTS for a mysql:// URL, with the URL's own credentials.
create_db() {
  local url=$1
  [ -x "$PY" ] || die "no .venv (scripts/setup.sh run)"
  "$PY" - "$url" <<'PY'
import sys

import environ
import MySQLdb

cfg = environ.Env.db_url_config(sys.argv[1])
name = cfg["NAME"]
if not name:
    sys.exit("DATABASE_URL names no database")
kw = {"user": cfg.get("USER") or "root", "password": cfg.get("PASSWORD") or "", "charset": "utf8mb4"}
host = cfg.get("HOST") or "localhost"
if host.startswith("/"):
    kw["unix_socket"] = host
else:
    kw["host"] = host
    if cfg.get("PORT"):
        kw["port"] = int(cfg["PORT"])
kw.update({k: v for k, v in (cfg.get("OPTIONS") or {}).items() if k in ("unix_socket", "ssl")})
try:
    conn = MySQLdb.connect(**kw)
except MySQLdb.Error as e:
    sys.exit(f"cannot connect to MySQL at {host} as {kw['user']}: {e}")
cur = conn.cursor()
cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [name])
if cur.fetchone():
    print(f"    database {name} exists")
else:
    q = name.replace("`", "``")
    cur.execute(f"CREATE DATABASE IF NOT EXISTS `{q}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    print(f"    created database {name} (utf8mb4)")
conn.close()
PY
}

# --- Redis -------------------------------------------------------------------------------
redis_up() { port_open 127.0.0.1 6379; }
start_redis() {
  if redis_up; then ok "Redis already running on 127.0.0.1:6379"; return; fi
  command -v redis-server >/dev/null || die "Redis is not installed (scripts/setup.sh test installs redis-server)"
  say "Starting Redis"
  rm -f "$RUN_DIR/redis.pid"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$RUN_DIR" --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log"
  record redis
  wait_until 20 redis_up || die "Redis did not start (see $RUN_DIR/redis.log)"
  ok "Redis up"
}
stop_redis() {
  say "Stopping Redis"
  if pid_alive "$RUN_DIR/redis.pid"; then kill_wait "$(cat "$RUN_DIR/redis.pid")"; fi
  rm -f "$RUN_DIR/redis.pid"
}

# --- RabbitMQ (only for a CELERY_BROKER_URL=amqp://localhost in make run) ----------------
rabbitmq_up() { port_open 127.0.0.1 5672; }
start_rabbitmq() {
  if rabbitmq_up; then ok "RabbitMQ already running on 127.0.0.1:5672"; return; fi
  command -v rabbitmq-server >/dev/null || die "RabbitMQ is not installed (apt-get install rabbitmq-server)"
  say "Starting RabbitMQ"
  as_root rabbitmq-server -detached
  record rabbitmq
  wait_until 90 rabbitmq_up || die "RabbitMQ did not start within 90 s"
  ok "RabbitMQ up"
}
stop_rabbitmq() { say "Stopping RabbitMQ"; as_root rabbitmqctl stop >/dev/null 2>&1 || true; }

# --- libvirtd + QEMU (qemu:///system) ------------------------------------------------------
virsh_q() { virsh -q -c "$QEMU_URI" "$@"; }
libvirt_up() { virsh_q version >/dev/null 2>&1; }
start_libvirt() {
  command -v libvirtd >/dev/null || die "libvirtd is not installed (scripts/setup.sh test installs it)"
  if ! pid_alive /run/libvirtd.pid || ! libvirt_up; then
    can_root || die "starting libvirtd needs root"
    say "Starting libvirtd (qemu:///system)"
    # libvirtd resolves its compiled-in default user even when qemu.conf overrides it.
    getent group libvirt-qemu >/dev/null || as_root groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null ||
      as_root useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
    as_root mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/images /var/cache/libvirt
    local qconf=/etc/libvirt/qemu.conf
    if ! { grep -qx 'user = "root"' $qconf && grep -qx 'security_driver = "none"' $qconf; } 2>/dev/null; then
      [ -f $qconf ] && as_root cp -n $qconf $qconf.orig
      # Containers and CI machines have no AppArmor/SELinux and no systemd: run QEMU as root.
      printf '%s\n' '# managed-by-campuscloud (scripts/services.sh): QEMU as root, no security labelling' \
        'user = "root"' 'group = "root"' 'security_driver = "none"' | as_root tee $qconf >/dev/null
    fi
    if ! pid_alive /run/virtlogd.pid; then as_root virtlogd -d; record virtlogd; fi
    if ! pid_alive /run/libvirtd.pid; then as_root libvirtd -d; record libvirtd; fi
    # The first start probes QEMU's capabilities (~7 s).
    wait_until 60 libvirt_up || die "libvirtd did not answer on $QEMU_URI within 60 s"
  else
    ok "libvirtd already running"
  fi
  if [ "$(virsh_q net-info default 2>/dev/null | awk '/^Active:/{print $2}')" != yes ]; then
    say "Starting libvirt network 'default'"
    virsh_q net-start default >/dev/null || die "virsh net-start default failed"
    record libvirt-net
  fi
  ok "libvirt up ($QEMU_URI, network default active)"
}
stop_libvirt_net() { say "Stopping libvirt network 'default'"; virsh_q net-destroy default >/dev/null 2>&1 || true; }
stop_libvirtd() {
  say "Stopping libvirtd"
  if libvirt_up; then
    local n
    # Domains and networks first: otherwise QEMU, dnsmasq and bridges outlive libvirtd.
    for n in $(virsh_q list --name 2>/dev/null); do virsh_q destroy "$n" >/dev/null 2>&1 || true; done
    for n in $(virsh_q net-list --name 2>/dev/null); do virsh_q net-destroy "$n" >/dev/null 2>&1 || true; done
  fi
  if pid_alive /run/libvirtd.pid; then kill_wait "$(cat /run/libvirtd.pid)"; fi
}
stop_virtlogd() { if pid_alive /run/virtlogd.pid; then kill_wait "$(cat /run/virtlogd.pid)"; fi; }

# --- vCenter simulator (scripts/vcsim.sh) -----------------------------------------------------
start_vcsim() {
  if [ ! -x scripts/vcsim.sh ]; then warn "scripts/vcsim.sh not found: vCenter simulator not started"; return; fi
  if scripts/vcsim.sh url >/dev/null 2>&1; then ok "vCenter simulator already running"; return; fi
  say "Starting the vCenter simulator"
  scripts/vcsim.sh start >/dev/null
  record vcsim
  ok "vCenter simulator up ($(scripts/vcsim.sh url))"
}
stop_vcsim() { if [ -x scripts/vcsim.sh ]; then scripts/vcsim.sh stop 2>/dev/null || true; fi; }

# --- commands ----------------------------------------------------------------------------------
stop_recorded() {
  [ -s "$STATE" ] || return 0
  local names=() n
  mapfile -t names <"$STATE"
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    n=${names[i]}
    case $n in
      mariadb) stop_mariadb ;; redis) stop_redis ;; rabbitmq) stop_rabbitmq ;;
      libvirt-net) stop_libvirt_net ;; libvirtd) stop_libvirtd ;; virtlogd) stop_virtlogd ;;
      vcsim) stop_vcsim ;; *) warn "unknown entry '$n' in $STATE" ;;
    esac
  done
  rm -f "$STATE"
}

status() {
  s() { if "$@" >/dev/null 2>&1; then echo up; else echo down; fi; }
  echo "mariadb   $(s mariadb_up)"
  echo "redis     $(s redis_up)"
  echo "rabbitmq  $(s rabbitmq_up)"
  echo "libvirtd  $(s libvirt_up)"
  echo "vcsim     $(s scripts/vcsim.sh url)"
  [ -s "$STATE" ] && echo "started by us ($STATE): $(tr '\n' ' ' <"$STATE")"
  return 0
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  start)
    [ $# -gt 0 ] || set -- mariadb redis libvirt vcsim
    for s in "$@"; do
      case $s in
        mariadb | redis | rabbitmq | libvirt | vcsim) "start_$s" ;;
        *) die "unknown service '$s' (mariadb redis rabbitmq libvirt vcsim)" ;;
      esac
    done
    ;;
  stop) stop_recorded ;;
  status) status 2>/dev/null ;;
  test-db) test_db ;;
  create-db) [ $# = 1 ] || die "usage: $0 create-db mysql://USER:PASSWORD@HOST:PORT/NAME"; create_db "$1" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
