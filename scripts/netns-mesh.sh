#!/usr/bin/env bash
# nullmesh on a real (virtual) LAN: one Linux network namespace per terminal, one for central, a
# bridge in its own namespace, real mDNS discovery. Root + iproute2 only (nftables for `loss`).
#
#   scripts/netns-mesh.sh up N                 create the LAN and start central + N terminals
#   scripts/netns-mesh.sh cut I | heal I       take terminal I off the LAN (cable pulled) / back on
#   scripts/netns-mesh.sh unplug I | plug I    remove terminal I's LAN link / give it a new one, under a new
#                                              name (eth1, eth2, ...) and index, same address (like docker
#                                              network disconnect / connect)
#   scripts/netns-mesh.sh partition "1 2" "3 4 5"   split the LAN into groups (unnamed terminals form one more group)
#   scripts/netns-mesh.sh unpartition          undo the partition only
#   scripts/netns-mesh.sh heal-all             undo every cut, partition, loss, delay, and bring central online
#   scripts/netns-mesh.sh loss I PCT           drop PCT % of terminal I's LAN packets, both ways (0 = off)
#   scripts/netns-mesh.sh delay I MS           delay terminal I's LAN packets by MS each way (0 = off; sch_netem, else a slow tbf link)
#   scripts/netns-mesh.sh offline | online     cut / restore the venue's link to central ("internet down")
#   scripts/netns-mesh.sh kill I | restart I   SIGKILL terminal I / start it again with the same data, port, token
#   scripts/netns-mesh.sh status [--json]      one line per terminal: process, mesh mode, peers, online
#   scripts/netns-mesh.sh api I PATH [JSON]    call terminal I's API (GET, or POST with a JSON body)
#   scripts/netns-mesh.sh exec ctl|central|I -- CMD...   run a command inside a namespace
#   scripts/netns-mesh.sh down                 stop every process and delete every namespace and link
#
# Topology (addresses exist only inside the namespaces this script creates):
#   $P-hub      bridge br0 = the venue LAN 10.77.0.0/24; ports vh<I> (terminal I), vc (central's uplink)
#   $P-t<I>     eth0 10.77.0.<10+I> on the LAN (libp2p + mDNS, route 224.0.0.0/4 dev eth0)
#               mgmt0 10.77.200.<10+I> (the terminal's local API: the "POS cable", never cut)
#   $P-c        central: eth0 10.77.0.2 on the LAN through vc (`offline` cuts it), mgmt0 10.77.200.2
#   $P-ctl      bridge brm 10.77.200.1/24: where tests and the chaos driver talk to the APIs from
# The root namespace's links are never touched; nothing is routed out of these namespaces.
#
# State: $NM_STATE (default /tmp/nullmesh-netns/<prefix>): env, mesh.json, logs/, data/, pids/.
# Commands after `up` use $NM_STATE, or the last `up` recorded in /tmp/nullmesh-netns/current.
# Prefix: $NM_PREFIX (default nm + 4 random hex digits); every namespace is named <prefix>-*.
set -Eeuo pipefail

ROOT_DIR="${NULLMESH_NETNS_DIR:-/tmp/nullmesh-netns}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI="$REPO/packages/cli/dist/bin.js"
NODE="${NODE:-node}"
LAN=10.77.0
MGMT=10.77.200
LIBP2P_PORT=4001
API_PORT=8080
CENTRAL_PORT=7070
READY_TIMEOUT_S="${NM_READY_TIMEOUT:-60}"
MESH_TIMEOUT_S="${NM_MESH_TIMEOUT:-40}"

die() { echo "netns-mesh: $*" >&2; exit 1; }
say() { echo "netns-mesh: $*" >&2; }

apt_install() { # package
  command -v apt-get >/dev/null 2>&1 || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 && return 0
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"
  if ! command -v ip >/dev/null 2>&1; then
    say "installing iproute2"
    apt_install iproute2 || die "iproute2 is missing and could not be installed"
  fi
}

load_state() {
  if [ -z "${NM_STATE:-}" ]; then
    [ -f "$ROOT_DIR/current" ] || die "no mesh is up (set NM_STATE or run: $0 up N)"
    NM_STATE="$(cat "$ROOT_DIR/current")"
  fi
  [ -f "$NM_STATE/env" ] || die "$NM_STATE/env not found (is the mesh up?)"
  # shellcheck disable=SC1091
  . "$NM_STATE/env"
  P="$NM_PREFIX"
  N="$NM_N"
}

ns_t() { echo "$P-t$1"; }
lan_ip() { echo "$LAN.$((10 + $1))"; }
mgmt_ip() { echo "$MGMT.$((10 + $1))"; }
check_index() {
  [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$N" ] || die "terminal index must be 1..$N, got '$1'"
}

# ── processes ──────────────────────────────────────────────────────────────────────────────────

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_ready() { # name outfile pid
  local name=$1 out=$2 pid=$3 deadline=$((SECONDS + READY_TIMEOUT_S))
  while ! grep -q '"ready":true' "$out" 2>/dev/null; do
    if ! pid_alive "$pid"; then
      say "$name exited before it was ready; last lines of its log:"
      tail -n 20 "$NM_STATE/logs/$name.log" >&2 || true
      return 1
    fi
    [ $SECONDS -lt $deadline ] || { say "$name not ready after ${READY_TIMEOUT_S}s"; return 1; }
    sleep 0.1
  done
  # the daemon's own pid, from its ready line (the same as $! unless something forked on the way)
  local ready_pid
  ready_pid="$(grep -o '"pid":[0-9]*' "$out" | head -n1 | cut -d: -f2)"
  [ -n "$ready_pid" ] && echo "$ready_pid" >"$NM_STATE/pids/$name"
  return 0
}

start_central() {
  local out="$NM_STATE/logs/central.out"
  : >"$out"
  setsid ip netns exec "$P-c" "$NODE" "$CLI" central --data "$NM_STATE/data/central" \
    --listen "0.0.0.0:$CENTRAL_PORT" --venues "$NM_STATE/venue" \
    </dev/null >"$out" 2>>"$NM_STATE/logs/central.log" &
  echo $! >"$NM_STATE/pids/central"
}

start_terminal() { # I
  local i=$1 ns out
  ns=$(ns_t "$i")
  out="$NM_STATE/logs/T$i.out"
  : >"$out"
  setsid ip netns exec "$ns" "$NODE" "$CLI" terminal --venue "$NM_STATE/venue" --id "T$i" \
    --data "$NM_STATE/data/T$i" --listen "/ip4/$(lan_ip "$i")/tcp/$LIBP2P_PORT" \
    --api "$(mgmt_ip "$i"):$API_PORT" --discovery mdns --central "http://$LAN.2:$CENTRAL_PORT" \
    --token "$(cat "$NM_STATE/tokens/T$i")" \
    </dev/null >"$out" 2>>"$NM_STATE/logs/T$i.log" &
  echo $! >"$NM_STATE/pids/T$i"
}

# ── API access from the control namespace ──────────────────────────────────────────────────────

api() { # I PATH [JSON]
  local i=$1 path=$2 body=${3:-}
  local url="http://$(mgmt_ip "$i"):$API_PORT$path" tok
  tok="$(cat "$NM_STATE/tokens/T$i")"
  if [ "${NM_NO_CURL:-}" = 1 ] || ! command -v curl >/dev/null 2>&1; then
    ip netns exec "$P-ctl" "$NODE" -e '
      const [u, t, b] = process.argv.slice(1)
      fetch(u, { method: b ? "POST" : "GET", body: b || undefined, signal: AbortSignal.timeout(10000),
        headers: { authorization: `Bearer ${t}`, ...(b ? { "content-type": "application/json" } : {}) } })
        .then((r) => r.text()).then((s) => process.stdout.write(s), (e) => { console.error(String(e)); process.exit(7) })' \
      "$url" "$tok" "$body"
    return
  fi
  if [ -n "$body" ]; then
    ip netns exec "$P-ctl" curl -sS --max-time 10 -H "authorization: Bearer $tok" \
      -H 'content-type: application/json' -d "$body" "$url"
  else
    ip netns exec "$P-ctl" curl -sS --max-time 5 -H "authorization: Bearer $tok" "$url"
  fi
}

status_line() { # I
  local i=$1 pid s
  pid="$(cat "$NM_STATE/pids/T$i" 2>/dev/null || true)"
  if ! pid_alive "$pid"; then echo "T$i down"; return; fi
  s="$(api "$i" /v1/status 2>/dev/null || true)"
  if [ -z "$s" ]; then echo "T$i pid $pid api-unreachable"; return; fi
  echo "$s" | "$NODE" -e '
    let d = ""; process.stdin.on("data", (c) => (d += c)).on("end", () => {
      try { const s = JSON.parse(d); console.log(`${process.argv[1]} pid ${process.argv[2]} ${s.mesh.mode} peers ${s.mesh.peers}/${s.mesh.roster - 1} quorum ${s.mesh.quorum} ${s.online ? "online" : "offline"} queue ${s.queue.count}`) }
      catch { console.log(`${process.argv[1]} pid ${process.argv[2]} ?`) } })' "T$i" "$pid"
}

wait_mesh() { # every terminal in quorum mode with every peer
  local deadline=$((SECONDS + MESH_TIMEOUT_S)) i ok line
  while :; do
    ok=1
    for i in $(seq 1 "$N"); do
      line="$(status_line "$i")"
      [[ "$line" == *" quorum peers $((N - 1))/"* ]] || { ok=0; break; }
    done
    [ $ok = 1 ] && return 0
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# ── links ──────────────────────────────────────────────────────────────────────────────────────

# terminal I's LAN interface: eth0, or ethK after its K-th `plug`
lan_if() { cat "$NM_STATE/lanif-T$1" 2>/dev/null || echo eth0; }
mcast_route() { ip -n "$(ns_t "$1")" route replace 224.0.0.0/4 dev "$(lan_if "$1")"; }

clear_partition() {
  local i r
  for i in $(seq 1 "$N"); do
    ip -n "$(ns_t "$i")" route show type blackhole 2>/dev/null | while read -r _ r _; do
      ip -n "$(ns_t "$i")" route del blackhole "$r" 2>/dev/null || true
    done
  done
  rm -f "$NM_STATE/partition"
}

set_loss() { # I PCT
  local ns pct=$2 dev
  ns=$(ns_t "$1")
  dev=$(lan_if "$1")
  command -v nft >/dev/null 2>&1 || {
    say "installing nftables (for packet loss)"
    apt_install nftables || die "nftables is missing and could not be installed"
  }
  ip netns exec "$ns" nft delete table inet nmloss 2>/dev/null || true
  [ "$pct" = 0 ] && return 0
  ip netns exec "$ns" nft -f - <<EOF
table inet nmloss {
  chain input { type filter hook input priority 0; policy accept; iifname "$dev" numgen random mod 100 < $pct drop; }
  chain output { type filter hook output priority 0; policy accept; oifname "$dev" numgen random mod 100 < $pct drop; }
}
EOF
}

set_delay() { # I MS
  local i=$1 ms=$2 ns dev
  ns=$(ns_t "$i")
  dev=$(lan_if "$i")
  ip netns exec "$ns" tc qdisc del dev "$dev" root 2>/dev/null || true
  ip netns exec "$P-hub" tc qdisc del dev "vh$i" root 2>/dev/null || true
  [ "$ms" = 0 ] && return 0
  if ip netns exec "$ns" tc qdisc replace dev "$dev" root netem delay "${ms}ms" 2>/dev/null; then
    ip netns exec "$P-hub" tc qdisc replace dev "vh$i" root netem delay "${ms}ms"
  else
    # kernels without sch_netem (e.g. minimal VM kernels): a slow, queueing link instead
    say "sch_netem is not available in this kernel: emulating a slow link (tbf 256kbit, up to ${ms}ms queueing) instead of a fixed delay"
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate 256kbit burst 4kb latency "${ms}ms"
    ip netns exec "$P-hub" tc qdisc replace dev "vh$i" root tbf rate 256kbit burst 4kb latency "${ms}ms"
  fi
}

# ── commands ───────────────────────────────────────────────────────────────────────────────────

cmd_up() {
  local n=${1:-}
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 60 ] || die "usage: $0 up N (1..60)"
  need_root
  [ -f "$CLI" ] || die "$CLI not found: run npm run build first"
  P="${NM_PREFIX:-nm$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
  [[ "$P" =~ ^[a-z0-9]{2,8}$ ]] || die "NM_PREFIX must be 2..8 lowercase letters or digits"
  if ip netns list | grep -q "^$P-"; then die "namespaces with prefix $P already exist"; fi
  N=$n
  local explicit_state=${NM_STATE:-}
  NM_STATE="${NM_STATE:-$ROOT_DIR/$P}"
  mkdir -p "$NM_STATE"/{logs,data,pids,tokens}
  NM_STATE="$(cd "$NM_STATE" && pwd)"
  cat >"$NM_STATE/env" <<EOF
NM_PREFIX=$P
NM_N=$N
NM_STATE=$NM_STATE
NM_CTL_NS=$P-ctl
NM_CENTRAL_URL=http://$MGMT.2:$CENTRAL_PORT
EOF
  if [ -z "$explicit_state" ]; then mkdir -p "$ROOT_DIR"; echo "$NM_STATE" >"$ROOT_DIR/current"; fi
  trap 'say "up failed: tearing down"; cmd_down >/dev/null 2>&1 || true' ERR
  local t0=$SECONDS i ns

  # hub (LAN bridge) and ctl (management bridge)
  ip netns add "$P-hub"; ip -n "$P-hub" link set lo up
  ip -n "$P-hub" link add br0 type bridge; ip -n "$P-hub" link set br0 up
  ip netns add "$P-ctl"; ip -n "$P-ctl" link set lo up
  ip -n "$P-ctl" link add brm type bridge
  ip -n "$P-ctl" addr add "$MGMT.1/24" dev brm; ip -n "$P-ctl" link set brm up

  # central: LAN through vc (cuttable), management through mhc
  ip netns add "$P-c"; ip -n "$P-c" link set lo up
  ip -n "$P-hub" link add vc type veth peer name eth0 netns "$P-c"
  ip -n "$P-hub" link set vc master br0; ip -n "$P-hub" link set vc up
  ip -n "$P-c" addr add "$LAN.2/24" dev eth0; ip -n "$P-c" link set eth0 up
  ip -n "$P-ctl" link add mhc type veth peer name mgmt0 netns "$P-c"
  ip -n "$P-ctl" link set mhc master brm; ip -n "$P-ctl" link set mhc up
  ip -n "$P-c" addr add "$MGMT.2/24" dev mgmt0; ip -n "$P-c" link set mgmt0 up

  for i in $(seq 1 "$N"); do
    ns=$(ns_t "$i")
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip -n "$P-hub" link add "vh$i" type veth peer name eth0 netns "$ns"
    ip -n "$P-hub" link set "vh$i" master br0; ip -n "$P-hub" link set "vh$i" up
    ip -n "$ns" addr add "$(lan_ip "$i")/24" dev eth0; ip -n "$ns" link set eth0 up
    mcast_route "$i" # mDNS: there is no default route in the namespace
    ip -n "$P-ctl" link add "mh$i" type veth peer name mgmt0 netns "$ns"
    ip -n "$P-ctl" link set "mh$i" master brm; ip -n "$P-ctl" link set "mh$i" up
    ip -n "$ns" addr add "$(mgmt_ip "$i")/24" dev mgmt0; ip -n "$ns" link set mgmt0 up
    head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n=' >"$NM_STATE/tokens/T$i"
  done

  # NM_GROUP_SIZE: custodian group size (policy barrier.groupSize); below N, cards have groups
  "$NODE" "$CLI" venue init --terminals "$N" --out "$NM_STATE/venue" --venue "$P-venue" \
    ${NM_GROUP_SIZE:+--group-size "$NM_GROUP_SIZE"} >"$NM_STATE/logs/venue.log"
  start_central
  for i in $(seq 1 "$N"); do start_terminal "$i"; done
  wait_ready central "$NM_STATE/logs/central.out" "$(cat "$NM_STATE/pids/central")" || false
  for i in $(seq 1 "$N"); do
    wait_ready "T$i" "$NM_STATE/logs/T$i.out" "$(cat "$NM_STATE/pids/T$i")" || false
  done
  trap - ERR

  # env + mesh.json for scripts and tests
  {
    for i in $(seq 1 "$N"); do
      echo "T${i}_NS=$(ns_t "$i")"
      echo "T${i}_API=http://$(mgmt_ip "$i"):$API_PORT"
      echo "T${i}_TOKEN=$(cat "$NM_STATE/tokens/T$i")"
    done
  } >>"$NM_STATE/env"
  {
    printf '{"prefix":"%s","n":%d,"state":"%s","ctlNs":"%s","venueDir":"%s",' "$P" "$N" "$NM_STATE" "$P-ctl" "$NM_STATE/venue"
    printf '"central":{"ns":"%s","url":"http://%s.2:%d","lanUrl":"http://%s.2:%d","data":"%s","log":"%s"},"terminals":[' \
      "$P-c" "$MGMT" "$CENTRAL_PORT" "$LAN" "$CENTRAL_PORT" "$NM_STATE/data/central" "$NM_STATE/logs/central.log"
    for i in $(seq 1 "$N"); do
      [ "$i" -gt 1 ] && printf ','
      printf '{"index":%d,"id":"T%d","ns":"%s","lanIp":"%s","api":"http://%s:%d","token":"%s","data":"%s","log":"%s"}' \
        "$i" "$i" "$(ns_t "$i")" "$(lan_ip "$i")" "$(mgmt_ip "$i")" "$API_PORT" "$(cat "$NM_STATE/tokens/T$i")" \
        "$NM_STATE/data/T$i" "$NM_STATE/logs/T$i.log"
    done
    printf ']}\n'
  } >"$NM_STATE/mesh.json"

  if [ "${NM_NO_WAIT:-}" != 1 ]; then
    if wait_mesh; then say "mesh formed: $N terminals in quorum mode after $((SECONDS - t0))s"
    else say "warning: the mesh did not fully form within ${MESH_TIMEOUT_S}s"; fi
  fi
  echo "prefix:  $P   (namespaces $P-hub $P-ctl $P-c $P-t1..$P-t$N)"
  echo "state:   $NM_STATE   (logs in logs/, ledgers in data/, mesh.json, env)"
  echo "central: http://$MGMT.2:$CENTRAL_PORT from $P-ctl (terminals use http://$LAN.2:$CENTRAL_PORT)"
  for i in $(seq 1 "$N"); do
    echo "T$i:      API http://$(mgmt_ip "$i"):$API_PORT  token $(cat "$NM_STATE/tokens/T$i")  libp2p $(lan_ip "$i"):$LIBP2P_PORT"
  done
  echo "try:     NM_STATE=$NM_STATE $0 status    |   ip netns exec $P-ctl curl -H 'authorization: Bearer <token>' http://$(mgmt_ip 1):$API_PORT/v1/status"
}

cmd_down() {
  if [ -z "${P:-}" ]; then
    if [ -n "${NM_STATE:-}" ] && [ -f "$NM_STATE/env" ]; then load_state
    elif [ -n "${NM_PREFIX:-}" ]; then P=$NM_PREFIX # a failed `up` before its state was written
    else load_state; fi
  fi
  [ -n "${P:-}" ] || die "no prefix"
  local nss ns pid
  nss="$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true)"
  # every process inside our namespaces (terminals, central, anything run with `exec`)
  for ns in $nss; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
  done
  local deadline=$((SECONDS + 5)) left
  while :; do
    left=""
    for ns in $nss; do left="$left$(ip netns pids "$ns" 2>/dev/null)"; done
    [ -z "$left" ] && break
    if [ $SECONDS -ge $deadline ]; then
      for ns in $nss; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      done
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  # deleting a namespace deletes its veth ends, and with them their peers
  for ns in $nss; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "${NM_STATE:-}" ] && [ -f "$ROOT_DIR/current" ] && [ "$(cat "$ROOT_DIR/current")" = "$NM_STATE" ]; then
    rm -f "$ROOT_DIR/current"
  fi
  say "down: removed $(echo "$nss" | grep -c . || true) namespace(s) with prefix $P${NM_STATE:+ (logs kept in $NM_STATE/logs)}"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  up) cmd_up "$@" ;;
  down) need_root; cmd_down ;;
  cut)
    need_root; load_state; check_index "${1:-}"
    ip -n "$P-hub" link set "vh$1" down; say "T$1 cut off the LAN" ;;
  heal)
    need_root; load_state; check_index "${1:-}"
    ip -n "$P-hub" link set "vh$1" up
    ip -n "$(ns_t "$1")" link set "$(lan_if "$1")" up
    mcast_route "$1" # a flapping eth0 loses the multicast route
    say "T$1 back on the LAN" ;;
  unplug)
    need_root; load_state; check_index "${1:-}"
    # deleting the hub's end deletes the terminal's end too: the interface is gone, not just down
    ip -n "$P-hub" link del "vh$1" 2>/dev/null || true
    say "T$1 unplugged: its LAN interface $(lan_if "$1") is gone" ;;
  plug)
    need_root; load_state; check_index "${1:-}"
    ip -n "$P-hub" link show "vh$1" >/dev/null 2>&1 && die "T$1 is plugged in (unplug it first)"
    n_plug=$(($(cat "$NM_STATE/plugs-T$1" 2>/dev/null || echo 0) + 1))
    dev="eth$n_plug"
    ip -n "$P-hub" link add "vh$1" type veth peer name "$dev" netns "$(ns_t "$1")"
    ip -n "$P-hub" link set "vh$1" master br0; ip -n "$P-hub" link set "vh$1" up
    ip -n "$(ns_t "$1")" addr add "$(lan_ip "$1")/24" dev "$dev"; ip -n "$(ns_t "$1")" link set "$dev" up
    echo "$n_plug" >"$NM_STATE/plugs-T$1"
    echo "$dev" >"$NM_STATE/lanif-T$1"
    mcast_route "$1"
    say "T$1 plugged back in on a new interface $dev ($(lan_ip "$1"))" ;;
  partition)
    need_root; load_state
    [ $# -ge 1 ] || die 'usage: partition "1 2" "3 4 5" (terminals not named form one more group)'
    clear_partition
    declare -A group=()
    g=0
    for grp in "$@"; do
      g=$((g + 1))
      for i in $grp; do check_index "$i"; group[$i]=$g; done
    done
    for a in $(seq 1 "$N"); do
      for b in $(seq 1 "$N"); do
        [ "${group[$a]:-0}" = "${group[$b]:-0}" ] && continue
        ip -n "$(ns_t "$a")" route add blackhole "$(lan_ip "$b")/32"
      done
    done
    printf '%s\n' "$@" >"$NM_STATE/partition"
    say "partitioned: $(printf '[%s] ' "$@")" ;;
  unpartition) need_root; load_state; clear_partition; say "partition healed: one LAN" ;;
  heal-all)
    need_root; load_state
    clear_partition
    for i in $(seq 1 "$N"); do
      ip -n "$P-hub" link set "vh$i" up
      ip -n "$(ns_t "$i")" link set "$(lan_if "$i")" up 2>/dev/null || true
      mcast_route "$i"
      ip netns exec "$(ns_t "$i")" nft delete table inet nmloss 2>/dev/null || true
      set_delay "$i" 0
    done
    ip -n "$P-hub" link set vc up
    say "healed: one LAN, no loss or delay, central online" ;;
  loss)
    need_root; load_state; check_index "${1:-}"
    [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -le 100 ] || die "usage: loss I PCT (0..100)"
    set_loss "$1" "$2"; say "T$1: ${2}% packet loss on its LAN link" ;;
  delay)
    need_root; load_state; check_index "${1:-}"
    [[ "${2:-}" =~ ^[0-9]+$ ]] || die "usage: delay I MS"
    set_delay "$1" "$2"; say "T$1: ${2}ms delay on its LAN link" ;;
  offline) need_root; load_state; ip -n "$P-hub" link set vc down; say "central unreachable (venue offline)" ;;
  online) need_root; load_state; ip -n "$P-hub" link set vc up; say "central reachable again" ;;
  kill)
    need_root; load_state; check_index "${1:-}"
    pid="$(cat "$NM_STATE/pids/T$1")"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.05; done
    say "T$1 (pid $pid) killed" ;;
  restart)
    need_root; load_state; check_index "${1:-}"
    pid="$(cat "$NM_STATE/pids/T$1")"
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; while pid_alive "$pid"; do sleep 0.05; done; fi
    start_terminal "$1"
    wait_ready "T$1" "$NM_STATE/logs/T$1.out" "$(cat "$NM_STATE/pids/T$1")"
    say "T$1 restarted (pid $(cat "$NM_STATE/pids/T$1"))" ;;
  status)
    need_root; load_state
    if [ "${1:-}" = --json ]; then
      printf '['
      for i in $(seq 1 "$N"); do
        [ "$i" -gt 1 ] && printf ','
        s="$(api "$i" /v1/status 2>/dev/null || true)"
        printf '{"id":"T%d","status":%s}' "$i" "${s:-null}"
      done
      printf ']\n'
    else
      for i in $(seq 1 "$N"); do status_line "$i"; done
      if ip -n "$P-hub" link show vc | grep -q 'state UP\|LOWER_UP'; then echo "central link up"; else echo "central link down"; fi
    fi ;;
  api) need_root; load_state; check_index "${1:-}"; [ -n "${2:-}" ] || die "usage: api I PATH [JSON]"; api "$@"; echo ;;
  exec)
    need_root; load_state
    where=${1:-}; shift || true
    [ "${1:-}" = -- ] && shift
    case "$where" in
      ctl) ns="$P-ctl" ;; central) ns="$P-c" ;; hub) ns="$P-hub" ;;
      *) check_index "$where"; ns=$(ns_t "$where") ;;
    esac
    exec ip netns exec "$ns" "$@" ;;
  env) load_state; cat "$NM_STATE/env" ;;
  ""|-h|--help|help) sed -n '2,/^set -Eeuo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$cmd' (try --help)" ;;
esac
