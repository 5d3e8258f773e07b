#!/usr/bin/env bash
# A multi-host testbed on this one machine: hypervisor hosts on two sites, each in its own
# network, mount and UTS namespaces with its own libvirtd (qemu+tcp on its management
# address), virtlogd, QEMU and dnsmasq, so a VM's VNC port and firewall rules belong to its host.
#
#   scripts/testbed.sh up               bring every host up (idempotent; repairs a lost host);
#                                       the last line of stdout is one JSON object {"hosts": [...], ...}
#   scripts/testbed.sh down             end every process of every host, remove namespaces, bridges, state
#   scripts/testbed.sh status           what is up, with each host's processes and memory; exit 1 unless all is
#   scripts/testbed.sh json             the JSON object of `up`, without touching anything
#   scripts/testbed.sh exec HOST -- CMD run CMD inside HOST (its namespaces; this machine's files otherwise)
#   scripts/testbed.sh kill HOST        the "host lost" fault: SIGKILL every process of HOST; `up` restarts it
#
# Needs root. What it makes (names for the default prefix `cc`):
#   bridges cc-mgmt (this machine: 10.213.20.1/24) and cc-data (MTU 9000, no address here); per host a
#   network namespace cc-<host> with mgmt0 (10.213.20.1N) and data0 (10.213.21.1N) on veth pairs to them;
#   a Redis of the testbed's own on 10.213.20.1:6379 (the hosts' broker; this machine's Redis is on
#   loopback, which a host cannot reach); per host /run/libvirt, /var/lib/libvirt, /etc/libvirt
#   (configuration only: none of this machine's domains, networks or filters), /var/log/libvirt,
#   /var/cache/libvirt, /run/netns and /etc/hosts of its own; $STATE/shared bound at /var/lib/cc-shared in
#   every host. MariaDB's socket /run/mysqld/mysqld.sock stays visible inside the hosts. `down` leaves only
#   the lock files in /run/lock and the empty mount point /var/lib/cc-shared.
#
# Environment (two testbeds coexist when these differ):
#   TESTBED_PREFIX    cc                        names: netns <prefix>-<host>, bridges <prefix>-mgmt/-data
#   TESTBED_HOSTS     "h1:east h2:east h3:west" host:site pairs, in address order
#   TESTBED_MGMT_NET  10.213.20                 first three octets of the management /24
#   TESTBED_DATA_NET  10.213.21                 first three octets of the data /24
#   TESTBED_STATE     /run/<prefix>-testbed     state: pid files, per-host directories, logs, shared storage
#   TESTBED_OWNER     (unset)                   `tests` when the test fixture brings it up (see tests/harness)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

PREFIX=${TESTBED_PREFIX:-cc}
HOSTS=${TESTBED_HOSTS:-h1:east h2:east h3:west}
MGMT=${TESTBED_MGMT_NET:-10.213.20}
DATA=${TESTBED_DATA_NET:-10.213.21}
STATE=${TESTBED_STATE:-/run/$PREFIX-testbed}
BR_MGMT=$PREFIX-mgmt BR_DATA=$PREFIX-data
GATEWAY=$MGMT.1 BROKER_PORT=6379
SHARED_PATH=/var/lib/cc-shared
MYSQL_SOCKET=/run/mysqld/mysqld.sock
# The directories a host gets of its own: state subdirectory -> path inside the host.
# Its own /run/netns too: a namespace made inside a host (`ip netns add`) is that host's alone.
HOST_DIRS="run:/run/libvirt lib:/var/lib/libvirt etc:/etc/libvirt log:/var/log/libvirt cache:/var/cache/libvirt
  netns:/run/netns"

log() { say "$@" >&2; }
note() { ok "$@" >&2; }
# poll SECONDS CMD...: like wait_until, every 50 ms (a host's daemons answer in a fraction of a second).
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do [ "$SECONDS" -le "$deadline" ] || return 1; sleep 0.05; done
}

# --- configuration ---------------------------------------------------------------------------
names=() sites=()
parse_hosts() {
  local pair
  [[ $PREFIX =~ ^[a-z][a-z0-9]{0,5}$ ]] || die "TESTBED_PREFIX '$PREFIX': 1-6 lower-case letters and digits"
  [[ $MGMT =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "TESTBED_MGMT_NET '$MGMT': three octets, e.g. 10.213.20"
  [[ $DATA =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "TESTBED_DATA_NET '$DATA': three octets, e.g. 10.213.21"
  [ "$MGMT" != "$DATA" ] || die "TESTBED_MGMT_NET and TESTBED_DATA_NET must differ"
  [[ $STATE == /?* ]] || die "TESTBED_STATE must be an absolute path"
  for pair in $HOSTS; do
    [[ $pair =~ ^([a-z][a-z0-9]{0,5}):([a-z][a-z0-9-]*)$ ]] || die "TESTBED_HOSTS entry '$pair': host:site, host 1-6 letters/digits"
    names+=("${BASH_REMATCH[1]}") sites+=("${BASH_REMATCH[2]}")
  done
  [ ${#names[@]} -gt 0 ] && [ ${#names[@]} -le 200 ] || die "TESTBED_HOSTS names 1 to 200 hosts"
  [ "$(printf '%s\n' "${names[@]}" | sort -u | wc -l)" = ${#names[@]} ] || die "TESTBED_HOSTS repeats a host"
}
index_of() { local i; for i in "${!names[@]}"; do [ "${names[i]}" = "$1" ] && { echo "$i"; return 0; }; done; return 1; }
mgmt_addr() { echo "$MGMT.$((11 + $1))"; }
data_addr() { echo "$DATA.$((11 + $1))"; }
netns() { echo "$PREFIX-$1"; }
host_dir() { echo "$STATE/hosts/$1"; }
uri_of() { echo "qemu+tcp://$(mgmt_addr "$1")/system"; }

json() {
  local i sep=''
  printf '{"hosts": ['
  for i in "${!names[@]}"; do
    printf '%s{"name": "%s", "uri": "%s", "site": "%s", "address": "%s", "data_address": "%s", "netns": "%s"}' \
      "$sep" "${names[i]}" "$(uri_of "$i")" "${sites[i]}" "$(mgmt_addr "$i")" "$(data_addr "$i")" "$(netns "${names[i]}")"
    sep=', '
  done
  printf '], "broker": "redis://%s:%s/0", "shared_path": "%s", "shared_dir": "%s", "state": "%s"}\n' \
    "$GATEWAY" "$BROKER_PORT" "$SHARED_PATH" "$STATE/shared" "$STATE"
}

# --- processes of a host ---------------------------------------------------------------------
netns_exists() { [ -e "/run/netns/$1" ]; }
netns_pids() { if netns_exists "$1"; then ip netns pids "$1" 2>/dev/null || true; fi; }

# host_process NAME PIDFILE: print the pid PIDFILE names when that process lives in the host's
# network namespace (a stale pid file may name a pid reused by anything else).
host_process() {
  local pid
  pid_alive "$2" || return 1
  pid=$(cat "$2")
  [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$(stat -L -c %i "/run/netns/$(netns "$1")" 2>/dev/null)" ] || return 1
  echo "$pid"
}
# holder_pid NAME: the process that holds the host's mount and UTS namespaces.
holder_pid() { host_process "$1" "$(host_dir "$1")/holder.pid"; }
# daemon_up NAME DAEMON: libvirtd or virtlogd of the host runs.
daemon_up() { host_process "$1" "$(host_dir "$1")/run/$2.pid" >/dev/null; }

# host_pids NAME: every process of the host: its network namespace, and those made inside it
# (`ip netns add` there), which only the host's mounts name.
host_pids() {
  local name=$1 pid nested
  netns_pids "$(netns "$name")"
  pid=$(holder_pid "$name") || return 0
  for nested in "$(host_dir "$name")"/netns/*; do
    [ -e "$nested" ] || continue
    nsenter --target "$pid" --mount --root ip netns pids "${nested##*/}" 2>/dev/null || true
  done
}

# host_command NAME: HOST_CMD=(the prefix that runs a command in the host's namespaces), with
# the holder's root (so the chroot, on a fresh machine) and the caller's directory when the host has it.
host_command() {
  local pid
  pid=$(holder_pid "$1") || die "host $1 is not up (scripts/testbed.sh up)"
  HOST_CMD=(nsenter --target "$pid" --mount --uts --net --root --wd
    /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD")
}
in_host() { host_command "$1"; shift; "${HOST_CMD[@]}" "$@"; }
# all_hosts: the configured hosts and those a previous `up` recorded, one a line.
all_hosts() { { printf '%s\n' "${names[@]}"; cat "$STATE/hosts.list" 2>/dev/null || true; } | sort -u; }

# running PID: the process exists and is not a zombie (this machine's init may reap late).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# end_pids SIGNAL PID...: send SIGNAL, wait up to 10 s, then SIGKILL what is left and wait until it is gone.
# A QEMU blocked on its disk (a busy machine's I/O) dies only when the I/O returns: one left running would be
# taken up again by the host's next libvirtd, as if the host had never lost it (seen in the HA drill).
end_pids() {
  local signal=$1
  shift
  [ $# -gt 0 ] || return 0
  kill "-$signal" "$@" 2>/dev/null || true
  pids_wait 200 "$@" && return 0
  kill -KILL "${LEFT[@]}" 2>/dev/null || true
  pids_wait 1200 "${LEFT[@]}" || note "still running 60 s after SIGKILL: ${LEFT[*]}"
}

# pids_wait TICKS PID...: wait up to TICKS x 50 ms for the processes to end; LEFT: those still running.
pids_wait() {
  local ticks=$1 pid
  shift
  for _ in $(seq "$ticks"); do
    LEFT=()
    for pid in "$@"; do running "$pid" && LEFT+=("$pid"); done
    [ ${#LEFT[@]} -eq 0 ] && return 0
    sleep 0.05
  done
  return 1
}

# --- up --------------------------------------------------------------------------------------
check_commands() {
  local c missing=()
  for c in ip nsenter unshare setsid flock libvirtd virtlogd virsh qemu-system-x86_64 redis-server dnsmasq; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (scripts/setup.sh test installs them)"
}

# The management /24 must not be routed anywhere but our bridge already.
check_subnet() {
  python3 - "$MGMT.0/24" "$BR_MGMT" <<'PY' || die "the management subnet $MGMT.0/24 is in use here (set TESTBED_MGMT_NET)"
import ipaddress, subprocess, sys
ours, bridge = ipaddress.ip_network(sys.argv[1]), sys.argv[2]
for line in subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True).stdout.splitlines():
    words = line.split()
    dest = words[0] if words[0] not in ("local", "broadcast", "unicast") else words[1]
    if dest == "default" or "dev" not in words or words[words.index("dev") + 1] == bridge:
        continue
    try:
        if ipaddress.ip_network(dest, strict=False).overlaps(ours):
            print(f"route: {line}", file=sys.stderr)
            sys.exit(1)
    except ValueError:
        continue
PY
}

# The data network carries VXLAN between hosts: jumbo frames, so a guest's 1500-byte frame
# fits with the 50-byte encapsulation, as on a campus data network.
DATA_MTU=9000

bridge_up() {
  local br=$1 mtu=$2 addr=${3:-}
  ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge
  ip link set "$br" mtu "$mtu" up
  [ -z "$addr" ] || ip addr replace "$addr" dev "$br"
}

# host_network I: namespace, the two veth pairs, addresses; repairs whatever is missing.
host_network() {
  local i=$1 name=${names[$1]} ns link suffix peer br addr mtu
  ns=$(netns "$name")
  if ! netns_exists "$ns"; then
    ip link del "$ns-m" 2>/dev/null || true
    ip link del "$ns-d" 2>/dev/null || true
    ip netns add "$ns"
  fi
  ip -n "$ns" link set lo up
  for link in "m:mgmt0:$BR_MGMT:$(mgmt_addr "$i"):1500" "d:data0:$BR_DATA:$(data_addr "$i"):$DATA_MTU"; do
    IFS=: read -r suffix peer br addr mtu <<<"$link"
    if ! ip -n "$ns" link show "$peer" >/dev/null 2>&1; then
      ip link del "$ns-$suffix" 2>/dev/null || true
      ip link add "$ns-$suffix" type veth peer name "$peer" netns "$ns"
    fi
    ip link set "$ns-$suffix" mtu "$mtu" master "$br" up
    ip -n "$ns" addr replace "$addr/24" dev "$peer"
    ip -n "$ns" link set "$peer" mtu "$mtu" up
  done
}

# host_config I: the host's own directories and libvirt configuration (rewritten at each start,
# so a changed subnet takes effect; the host UUID stays: migration refuses two hosts with one UUID).
host_config() {
  local i=$1 name=${names[$1]} dir addr d
  dir=$(host_dir "$name") addr=$(mgmt_addr "$i")
  for d in $HOST_DIRS; do mkdir -p "$dir/${d%%:*}"; done
  mkdir -p "$dir/log/qemu" "$dir/etc/nwfilter" "$dir/cache/qemu/capabilities"
  [ -s "$dir/uuid" ] || cat /proc/sys/kernel/random/uuid >"$dir/uuid"
  # The stock filters from the package, never this machine's /etc/libvirt/nwfilter (tests define theirs there).
  [ -n "$(ls -A "$dir/etc/nwfilter")" ] || cp /usr/share/libvirt/nwfilter/*.xml "$dir/etc/nwfilter/" 2>/dev/null || true
  cat >"$dir/etc/libvirtd.conf" <<EOF
# scripts/testbed.sh: host $name. Plain TCP without authentication: a test network only.
listen_tls = 0
listen_tcp = 1
listen_addr = "$addr"
auth_tcp = "none"
host_uuid = "$(cat "$dir/uuid")"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
  cat >"$dir/etc/qemu.conf" <<EOF
# scripts/testbed.sh: host $name. QEMU as root without labelling (no AppArmor/SELinux here);
# no cgroups: every host's libvirtd would otherwise name its VMs' cgroups alike (qemu-1-NAME).
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
vnc_listen = "$addr"
spice_listen = "$addr"
migration_address = "$addr"
migration_host = "$addr"
EOF
  echo 'log_outputs = "3:file:/var/log/libvirt/virtlogd.log"' >"$dir/etc/virtlogd.conf"
  { cat /etc/hosts 2>/dev/null || true
    echo "# scripts/testbed.sh: the testbed's hosts"
    for d in "${!names[@]}"; do echo "$(mgmt_addr "$d") ${names[d]}"; done
  } >"$dir/hosts"
}

# The holder: enters the host's namespaces, drops its copies of the machine's network namespaces
# (so a deleted one is really freed), binds the host's directories over the machine's, then sleeps.
# Every daemon of the host is started inside it with nsenter; its pid file says it is ready.
HOLDER_SH='
set -e
dir=$1 name=$2 shared=$3 shared_path=$4
echo "$name" >/proc/sys/kernel/hostname
umount --recursive --lazy /run/netns 2>/dev/null || true
for pair in $5; do
  mkdir -p "${pair#*:}"
  mount --bind "$dir/${pair%%:*}" "${pair#*:}"
done
mkdir -p "$shared_path"
mount --bind "$shared" "$shared_path"
[ ! -f /etc/hosts ] || mount --bind "$dir/hosts" /etc/hosts
cd /
echo $$ >"$dir/holder.pid.new"
mv "$dir/holder.pid.new" "$dir/holder.pid"
exec sleep infinity
'

start_holder() {
  local name=$1 dir
  dir=$(host_dir "$name")
  holder_pid "$name" >/dev/null && return 0
  # A holder that is gone took the host's mounts with it: whatever still runs in the host
  # (a daemon of a half-killed host) lives in mounts nobody can reach any more.
  end_pids TERM $(netns_pids "$(netns "$name")")
  rm -f "$dir/holder.pid" "$dir/run/libvirtd.pid" "$dir/run/virtlogd.pid"
  setsid ip netns exec "$(netns "$name")" unshare --mount --uts --propagation private -- \
    /bin/sh -c "$HOLDER_SH" holder "$dir" "$name" "$STATE/shared" "$SHARED_PATH" "$HOST_DIRS" \
    </dev/null >"$dir/holder.log" 2>&1 9>&- &
}

wait_holder() {
  poll 10 holder_pid "$1" >/dev/null || die "host $1: its namespaces did not come up (see $(host_dir "$1")/holder.log)"
}

# A libvirtd probes QEMU for ~8 s at its first start; a copy of a probe made on this machine
# (the same binaries; libvirt re-probes when they changed) makes it start in ~0.2 s.
seed_cache() {
  local name=$1 from=$2 to
  to=$(host_dir "$name")/cache/qemu/capabilities
  [ -z "$(ls -A "$to")" ] || return 0
  [ -d "$from" ] && [ -n "$(ls -A "$from")" ] && cp "$from"/*.xml "$to/" 2>/dev/null || true
}

start_daemons() {
  local name=$1
  daemon_up "$name" virtlogd ||
    in_host "$name" virtlogd -d -p /run/libvirt/virtlogd.pid </dev/null >/dev/null 2>&1 9>&-
  daemon_up "$name" libvirtd ||
    in_host "$name" libvirtd -d --listen -p /run/libvirt/libvirtd.pid </dev/null >/dev/null 2>&1 9>&-
}

libvirt_answers() { virsh -q -c "$(uri_of "$1")" version >/dev/null 2>&1; }

wait_libvirt() {
  local i=$1
  poll 90 libvirt_answers "$i" ||
    die "host ${names[i]}: libvirtd does not answer on $(uri_of "$i") (see $(host_dir "${names[i]}")/log/libvirtd.log)"
}

broker_up() { pid_alive "$STATE/redis.pid" && port_open "$GATEWAY" "$BROKER_PORT"; }
start_broker() {
  broker_up && return 0
  rm -f "$STATE/redis.pid"
  redis-server --daemonize yes --bind "$GATEWAY" --port "$BROKER_PORT" --protected-mode no \
    --save "" --appendonly no --dir "$STATE" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" </dev/null >/dev/null 9>&-
  poll 20 broker_up || die "the testbed's Redis did not start on $GATEWAY:$BROKER_PORT (see $STATE/redis.log)"
}

cmd_up() {
  local i seed=/var/cache/libvirt/qemu/capabilities started=$SECONDS
  check_commands
  check_subnet
  # libvirtd looks up its compiled-in QEMU account even though qemu.conf says root.
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  mkdir -p "$STATE/shared" "$STATE/hosts"
  echo "$PREFIX" >"$STATE/.cc-testbed"
  # `tests` only for a testbed the tests made; once a person brings it up it is theirs to take down.
  if [ ! -e "$STATE/owner" ] || [ -z "${TESTBED_OWNER:-}" ]; then echo "${TESTBED_OWNER:-manual}" >"$STATE/owner"; fi
  all_hosts >"$STATE/hosts.list.new"
  mv "$STATE/hosts.list.new" "$STATE/hosts.list"
  log "Testbed $PREFIX: ${#names[@]} hosts, management $MGMT.0/24, data $DATA.0/24, state $STATE"
  bridge_up "$BR_MGMT" 1500 "$GATEWAY/24"
  bridge_up "$BR_DATA" "$DATA_MTU"
  for i in "${!names[@]}"; do host_network "$i"; done
  start_broker
  for i in "${!names[@]}"; do
    daemon_up "${names[i]}" libvirtd || host_config "$i"
    start_holder "${names[i]}"
  done
  for i in "${!names[@]}"; do
    wait_holder "${names[i]}"
    seed_cache "${names[i]}" "$seed"
    start_daemons "${names[i]}"
    # Without a probe to copy, the first host makes one and the others copy it.
    if [ -z "$(ls -A "$seed" 2>/dev/null)" ]; then
      wait_libvirt "$i"
      seed=$(host_dir "${names[i]}")/cache/qemu/capabilities
    fi
  done
  for i in "${!names[@]}"; do wait_libvirt "$i"; done
  note "testbed $PREFIX up in $((SECONDS - started)) s: ${names[*]} (broker redis://$GATEWAY:$BROKER_PORT)"
  json
}

# --- down, kill ------------------------------------------------------------------------------
cmd_down() {
  local name ns all=() pids=() started=$SECONDS
  mapfile -t all < <(all_hosts)
  for name in "${all[@]}"; do
    [ -n "$name" ] || continue
    mapfile -t -O "${#pids[@]}" pids < <(host_pids "$name")
  done
  [ ${#pids[@]} -eq 0 ] || log "Ending ${#pids[@]} processes of the testbed's hosts"
  end_pids TERM "${pids[@]}"
  for name in "${all[@]}"; do
    [ -n "$name" ] || continue
    ns=$(netns "$name")
    ip link del "$ns-m" 2>/dev/null || true
    ip link del "$ns-d" 2>/dev/null || true
    if netns_exists "$ns"; then
      [ -z "$(netns_pids "$ns")" ] || warn "processes still in $ns: $(netns_pids "$ns" | tr '\n' ' ')"
      ip netns del "$ns"
    fi
  done
  ip link del "$BR_MGMT" 2>/dev/null || true
  ip link del "$BR_DATA" 2>/dev/null || true
  if pid_alive "$STATE/redis.pid"; then end_pids TERM "$(cat "$STATE/redis.pid")"; fi
  # Only a directory this script made is removed, whatever TESTBED_STATE says.
  if [ -f "$STATE/.cc-testbed" ]; then rm -rf "$STATE"; fi
  note "testbed $PREFIX down in $((SECONDS - started)) s"
}

cmd_kill() {
  local name=$1 pids=()
  index_of "$name" >/dev/null || die "no host '$name' in this testbed (${names[*]})"
  mapfile -t pids < <(host_pids "$name")
  end_pids KILL "${pids[@]}"
  note "host $name lost: ${#pids[@]} processes killed (scripts/testbed.sh up brings it back)"
}

# --- status ----------------------------------------------------------------------------------
rss_mib() {
  local pid kib=0 v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
    kib=$((kib + ${v:-0}))
  done
  echo $((kib / 1024))
}

cmd_status() {
  local i name pids=() state all_up=0 domains up_host=
  echo "testbed $PREFIX (state $STATE, owner $(cat "$STATE/owner" 2>/dev/null || echo none))"
  printf '%-6s %-8s %-10s %-14s %-14s %-9s %-8s %s\n' host site netns address data libvirtd domains "processes (RSS MiB)"
  for i in "${!names[@]}"; do
    name=${names[i]} state=down domains=-
    mapfile -t pids < <(host_pids "$name")
    if holder_pid "$name" >/dev/null && libvirt_answers "$i"; then
      state=up up_host=$name
      domains=$(virsh -q -c "$(uri_of "$i")" list --name 2>/dev/null | grep -c . || true)
    else
      all_up=1
    fi
    printf '%-6s %-8s %-10s %-14s %-14s %-9s %-8s %s\n' "$name" "${sites[i]}" "$(netns "$name")" \
      "$(mgmt_addr "$i")" "$(data_addr "$i")" "$state" "$domains" "${#pids[@]} ($(rss_mib "${pids[@]}"))"
  done
  if broker_up; then echo "broker   redis://$GATEWAY:$BROKER_PORT/0 up"; else echo "broker   down"; all_up=1; fi
  echo "shared   $SHARED_PATH in every host = $STATE/shared"
  if [ -z "$up_host" ]; then
    echo "mariadb  (no host up to look from)"
  elif in_host "$up_host" test -S "$MYSQL_SOCKET"; then
    echo "mariadb  $MYSQL_SOCKET visible in the hosts"
  else
    echo "mariadb  no socket at $MYSQL_SOCKET (MariaDB is not running)"
  fi
  return "$all_up"
}

# --- main ------------------------------------------------------------------------------------
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
cmd=${1:-}
[ $# -gt 0 ] && shift
parse_hosts
case $cmd in
  json) json; exit 0 ;;
  up | down | status | exec | kill) ;;
  *) usage ;;
esac
is_root || die "the testbed needs root (network namespaces, bridges, mounts)"
case $cmd in
  up | down | kill)
    # Every process started under the lock is given `9>&-`: a daemon holding fd 9 would hold the lock.
    # The lock file stays (removing it would let two holders in); /run/lock is where such files live.
    mkdir -p "$(dirname "$STATE")" /run/lock
    exec 9>"/run/lock/$(basename "$STATE").lock"
    flock -w 600 9 || die "another scripts/testbed.sh holds /run/lock/$(basename "$STATE").lock"
    ;;
esac
case $cmd in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill) [ $# = 1 ] || usage; cmd_kill "$1" ;;
  exec)
    [ $# -ge 3 ] && [ "$2" = -- ] || usage
    name=$1
    shift 2
    index_of "$name" >/dev/null || die "no host '$name' in this testbed (${names[*]})"
    host_command "$name"
    exec "${HOST_CMD[@]}" "$@"
    ;;
esac
