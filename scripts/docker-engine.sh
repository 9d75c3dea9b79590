#!/usr/bin/env bash
# Credit: vendored unchanged (apart from this header) from the team's shared machine tooling,
# ../shared/tools/docker-engine.sh, so that CI on a clean clone, where ../shared does not exist, can
# run the compose test. Keep the two in step. Used by .ci/run and test/netns-compose.test.ts.
#
# A real Docker engine on these machines (root, Debian 12, no Docker Hub; only Debian's and npm's
# registries reachable), so that `docker compose -f docker/compose.yaml up --build` can run in tests
# and CI. Idempotent: does only what is missing.
#
#   scripts/docker-engine.sh          # engine + compose v2 + buildx + base image; prints "docker ready"
#   scripts/docker-engine.sh stop     # stops the dockerd this script started
#
# What it sets up (measured here: ~3 min the first time on a fresh machine, seconds afterwards):
# - docker.io (engine 20.10, containerd, runc) and iptables from Debian 12; dockerd with its defaults
#   (overlay2, cgroupfs, NAT via iptables-nft) started in the background, log in $W/dockerd.log
# - `docker compose` v2 and `docker buildx`: not packaged for Debian 12, so the static binaries are
#   unpacked from Debian 13's .debs (private apt config; the system's sources stay as they are)
# - the base image `node:20-bookworm-slim`, built locally (debootstrap minbase + this machine's node
#   and npm + its CA bundle, user `node` uid 1000), because Docker Hub cannot be reached. Containers
#   reach the npm registry like this machine does.
# Two things a Dockerfile must avoid here: a `# syntax=docker/dockerfile:...` line (BuildKit would
# fetch that frontend from Docker Hub) and any base image other than node:20-bookworm-slim (or one
# built FROM it). Multicast (mDNS) works between containers on a user-defined bridge.
set -euo pipefail
W=${DOCKER_ENGINE_DIR:-${TMPDIR:-/tmp}/nullmesh-docker-engine}
mkdir -p "$W"
export DEBIAN_FRONTEND=noninteractive

if [ "${1:-}" = stop ]; then
  if [ -f "$W/dockerd.pid" ]; then
    pid=$(cat "$W/dockerd.pid"); kill "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    echo "dockerd stopped"
  fi
  rm -f "$W/dockerd.pid"
  # dockerd sets the host's FORWARD policy to DROP; put back what was there before it started
  [ -f "$W/forward-policy" ] && iptables -P FORWARD "$(cat "$W/forward-policy")" 2>/dev/null && rm -f "$W/forward-policy"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "docker-engine.sh: needs root" >&2; exit 2; }

# the Debian mirror this machine is configured with (never hard-coded)
mirror=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)
[ -n "$mirror" ] || { echo "docker-engine.sh: no Debian mirror found in apt's sources" >&2; exit 1; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v iptables >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq docker.io iptables debootstrap >/dev/null
fi

P=/usr/libexec/docker/cli-plugins
if [ ! -x $P/docker-compose ] || [ ! -x $P/docker-buildx ]; then
  T=$W/apt-trixie; mkdir -p $T/lists/partial $T/cache/archives/partial $T/x
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >$T/sources.list
  A=(-o Dir::Etc::SourceList=$T/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$T/lists -o Dir::Cache=$T/cache)
  apt-get "${A[@]}" update -qq
  (cd $T && apt-get "${A[@]}" download docker-compose docker-buildx >/dev/null 2>&1)
  for d in $T/*.deb; do dpkg-deb -x "$d" $T/x; done
  install -D -m755 -t $P $T/x$P/docker-compose $T/x$P/docker-buildx
fi

if ! docker info >/dev/null 2>&1; then
  [ -f "$W/forward-policy" ] || iptables -S FORWARD 2>/dev/null | awk '$1=="-P"{print $3}' >"$W/forward-policy"
  nohup dockerd >"$W/dockerd.log" 2>&1 &
  echo $! >"$W/dockerd.pid"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null || { tail -5 "$W/dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect node:20-bookworm-slim >/dev/null 2>&1; then
  R=$W/rootfs; rm -rf "$R"
  debootstrap --variant=minbase bookworm "$R" "$mirror" >"$W/debootstrap.log" 2>&1
  install -D -m755 "$(command -v node)" "$R/usr/local/bin/node"
  mkdir -p "$R/usr/local/lib/node_modules" "$R/etc/ssl/certs"
  cp -a "$(npm root -g)/npm" "$R/usr/local/lib/node_modules/"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
  cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
  chroot "$R" groupadd -g 1000 node
  chroot "$R" useradd -u 1000 -g node -s /bin/bash -m node
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
  tar -C "$R" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    -c 'CMD ["node"]' - node:20-bookworm-slim >/dev/null
  rm -rf "$R"
fi
echo "docker ready: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short | sed 's/^/compose /'), base image node:20-bookworm-slim"
