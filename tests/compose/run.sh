#!/usr/bin/env bash
# `make compose-test`: build the image from the Dockerfile and run compose.yaml for real
# on podman (Docker's API through `podman system service`, Debian's docker-compose 1.29).
#
# No registry is reachable, so the base images the Dockerfile and compose.yaml name
# (python:3.11-slim, nats:2.10-alpine) are made from Debian packages with debootstrap,
# cached under $COMPOSE_TEST_CACHE. All podman state (storage, networks, volumes) lives
# in a temp dir that is removed on exit, whatever happens. Every wait has a timeout.
# A prerequisite that cannot be installed is reported and the run exits 0 (skipped); a
# failure of the image or the stack exits 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
CACHE=${COMPOSE_TEST_CACHE:-/var/tmp/sayna-sip-compose-cache}
PROJECT=saynasipcompose$$
COMPOSE_FILE=compose.yaml  # then compose.cluster.yaml, as project $PROJECT-cluster
IMAGE=sayna-sip:local
SUBNET=10.219.$((RANDOM % 200 + 10)).0/24
SENT=0
# Set before any compose call (cleanup runs `down` even when a step failed early).
SAYNA_SIP_CONFIG=/dev/null INGRESS_PUBLISH=0 LIVEKIT_API_KEY="" LIVEKIT_API_SECRET=""
T0=$(date +%s.%N)

say() { printf 'compose-test: %s\n' "$*"; }
skip() { say "SKIPPED: $*"; exit 0; }
fail() { say "FAILED: $*"; exit 1; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}s')" "$1" "$(date +%s.%N)"; }
step() { # step NAME CMD...: run CMD, print how long it took; its failure fails the run
  local name=$1 start; shift
  start=$(date +%s.%N)
  say "step $name ..."
  "$@" || fail "step $name"
  say "step $name done in $(elapsed "$start")"
}

# --- prerequisites (Debian packages) ------------------------------------------------
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null || skip "needs root (podman as root, debootstrap); run as root or with passwordless sudo"
  SUDO="sudo -n"
fi
need=()
for pair in podman:podman runc:runc docker-compose:docker-compose debootstrap:debootstrap \
            iptables:iptables curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing from Debian: ${need[*]}"
  command -v apt-get >/dev/null || skip "missing ${need[*]} and no apt-get to install them"
  { timeout 300 $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      timeout 600 $SUDO apt-get install -y -qq "${need[@]}"; } >/tmp/compose-test-apt.log 2>&1 \
    || skip "apt-get could not install ${need[*]} (see /tmp/compose-test-apt.log)"
fi
[ -x "$PY" ] || fail "no .venv (run make install first)"

# --- an isolated podman ------------------------------------------------------------
WORK=$(mktemp -d /var/tmp/sayna-sip-compose.XXXXXX)
mkdir -p "$WORK"/{root,run,tmp,net,data}
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = []
[network]
network_config_dir = "$WORK/net"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$WORK/tmp"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/root"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
export DOCKER_HOST=unix://$WORK/podman.sock COMPOSE_HTTP_TIMEOUT=120
P() { timeout "${PT:-120}" $SUDO env CONTAINERS_CONF="$CONTAINERS_CONF" \
  CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF" podman "$@"; }
DC() { timeout "${PT:-120}" $SUDO env DOCKER_HOST="$DOCKER_HOST" COMPOSE_HTTP_TIMEOUT=120 \
  SAYNA_SIP_CONFIG="$SAYNA_SIP_CONFIG" COMPOSE_TEST_CA_DIR="$WORK/data/dev-ca" \
  COMPOSE_TEST_SUBNET="$SUBNET" INGRESS_PUBLISH="$INGRESS_PUBLISH" \
  LIVEKIT_API_KEY="$LIVEKIT_API_KEY" LIVEKIT_API_SECRET="$LIVEKIT_API_SECRET" \
  SIP_HOOK_ALLOW_NETWORKS="$SUBNET" \
  docker-compose -p "$PROJECT" -f "$ROOT/$COMPOSE_FILE" -f "$ROOT/tests/compose/override.yaml" "$@"; }

SERVICE_PID="" HEALTH_PID=""
cleanup() {
  local code=$?
  set +e
  [ -n "$HEALTH_PID" ] && kill "$HEALTH_PID" 2>/dev/null
  [ "$SENT" != 0 ] && kill "$SENT" 2>/dev/null
  if [ -n "${COMPOSE_TEST_KEEP:-}" ]; then  # keep the logs of a run to read after it
    mkdir -p "$COMPOSE_TEST_KEEP"
    [ -S "$WORK/podman.sock" ] && PT=60 DC logs --no-color -t >"$COMPOSE_TEST_KEEP/stack.log" 2>&1
    cp "$WORK"/*.log "$WORK"/*.ids "$WORK"/*.json "$WORK"/*.metrics "$COMPOSE_TEST_KEEP"/ 2>/dev/null
  fi
  if [ -S "$WORK/podman.sock" ]; then PT=120 DC down -v --remove-orphans -t 5 >/dev/null 2>&1; fi
  PT=60 P rm -af -t 1 >/dev/null 2>&1
  PT=60 P pod rm -af >/dev/null 2>&1
  PT=60 P volume rm -af >/dev/null 2>&1
  PT=60 P network prune -f >/dev/null 2>&1
  PT=120 P rmi -af >/dev/null 2>&1
  [ -n "$SERVICE_PID" ] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null
  # Leftover overlay/shm mounts under the temp dir, deepest first, then the dir itself.
  findmnt -rn -o TARGET | grep -F "$WORK" | sort -r | xargs -r -n1 $SUDO umount -l 2>/dev/null
  $SUDO rm -rf "$WORK"
  say "total $(elapsed "$T0") (exit $code)"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_service() {
  $SUDO env CONTAINERS_CONF="$CONTAINERS_CONF" CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF" \
    podman system service --time=0 "$DOCKER_HOST" >"$WORK/service.log" 2>&1 &
  SERVICE_PID=$!
  for _ in $(seq 100); do [ -S "$WORK/podman.sock" ] && return 0; sleep 0.1; done
  cat "$WORK/service.log"; skip "podman system service did not start (see above)"
}

# --- base images from Debian packages (cached) --------------------------------------
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
base_tar() { # the minbase rootfs with Python, venv, CAs and wget, built once per CA bundle
  local key tar dir
  key=$(cat "$CA_BUNDLE" 2>/dev/null | sha256sum | cut -c1-12)
  tar=$CACHE/bookworm-minbase-$key.tar
  if [ ! -s "$tar" ]; then
    dir=$WORK/rootfs
    $SUDO mkdir -p "$CACHE"
    timeout 900 $SUDO debootstrap --variant=minbase \
      --include=python3,python3-venv,ca-certificates,wget bookworm "$dir" \
      http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
      || { tail -5 "$WORK/debootstrap.log"; skip "debootstrap could not build a bookworm rootfs from deb.debian.org"; }
    $SUDO ln -sf python3 "$dir/usr/bin/python"
    # pip in the build must trust the chain pip on this machine trusts.
    [ -s "$CA_BUNDLE" ] && $SUDO cp "$CA_BUNDLE" "$dir/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' | $SUDO tee "$dir/etc/pip.conf" >/dev/null
    $SUDO rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    $SUDO tar -C "$dir" -cf "$tar.part" . && $SUDO mv "$tar.part" "$tar"
    $SUDO rm -rf "$dir"
  else
    say "base rootfs from cache $tar"
  fi
  echo "$tar" >"$WORK/base.path"
}

haproxy_tar() { # a minbase rootfs with Debian's haproxy (2.6): the stand-in for haproxy:2.6-bookworm
  local tar=$CACHE/bookworm-haproxy.tar dir=$WORK/haproxy-rootfs
  if [ ! -s "$tar" ]; then
    $SUDO mkdir -p "$CACHE"
    timeout 900 $SUDO debootstrap --variant=minbase --include=haproxy bookworm "$dir" \
      http://deb.debian.org/debian >"$WORK/debootstrap-haproxy.log" 2>&1 \
      || { tail -5 "$WORK/debootstrap-haproxy.log"; skip "debootstrap could not build a bookworm rootfs with haproxy"; }
    $SUDO rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    $SUDO tar -C "$dir" -cf "$tar.part" . && $SUDO mv "$tar.part" "$tar"
    $SUDO rm -rf "$dir"
  else
    say "haproxy rootfs from cache $tar"
  fi
  echo "$tar" >"$WORK/haproxy.path"
}

import_bases() {
  local tar nats
  tar=$(cat "$WORK/base.path")
  PT=300 P import -q --change 'CMD ["python3"]' "$tar" docker.io/library/python:3.11-slim >/dev/null || return 1
  nats=$($PY -c 'from tests.fixtures.nats import nats_server_binary as n; print(n())')
  mkdir -p "$WORK/nats-image" && cp "$nats" "$WORK/nats-image/nats-server"
  printf 'FROM docker.io/library/python:3.11-slim\nCOPY nats-server /usr/local/bin/nats-server\nCMD ["nats-server"]\n' \
    >"$WORK/nats-image/Containerfile"
  PT=300 P build -q -t docker.io/library/nats:2.10-alpine "$WORK/nats-image" >/dev/null || return 1
  # As the official image: unprivileged, its config under /usr/local/etc/haproxy.
  PT=300 P import -q --change 'USER haproxy' \
    --change 'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
    "$(cat "$WORK/haproxy.path")" docker.io/library/haproxy:2.6-bookworm >/dev/null
}

build_image() {
  PT=900 P build -q --network host -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 && return 0
  tail -30 "$WORK/build.log"
  # pip inside the build could not reach the package index: the machine, not the image.
  if grep -qE 'NewConnectionError|Temporary failure in name resolution|ProxyError|Network is unreachable' "$WORK/build.log"; then
    skip "the image build could not reach PyPI from inside the build (see above)"
  fi
  return 1
}

check_image() {
  local user help venv size leak
  user=$(P run --rm --entrypoint id "$IMAGE" -u) || return 1
  [ "$user" != 0 ] || { say "image runs as root"; return 1; }
  help=$(P run --rm "$IMAGE" --help) || { say "IMAGE --help failed"; return 1; }
  grep -q send-test-event <<<"$help" || { say "--help lists no commands: $help"; return 1; }
  leak=$(P run --rm --entrypoint sh "$IMAGE" -c \
    'ls -d /src /root/.cache/pip 2>/dev/null; ls /opt/sayna-sip/lib/python3*/site-packages | grep -iE "^(pytest|ruff|mypy|mutmut)" ; true')
  [ -z "$leak" ] || { say "image holds more than the runtime venv: $leak"; return 1; }
  venv=$(P run --rm --entrypoint du "$IMAGE" -sh /opt/sayna-sip | cut -f1)
  size=$(P image inspect "$IMAGE" --format '{{.Size}}')
  say "image $IMAGE: $((size / 1000000)) MB, runtime venv /opt/sayna-sip $venv, user uid $user"
}

# --- the stack ----------------------------------------------------------------------
prepare_config() {
  INGRESS_PUBLISH=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  eval "$($PY -c 'from tests.fixtures.livekit import API_KEY, API_SECRET; print(f"LIVEKIT_API_KEY={API_KEY} LIVEKIT_API_SECRET={API_SECRET}")')"
  SAYNA_SIP_CONFIG=$WORK/data/sayna-sip.yaml
  cat >"$SAYNA_SIP_CONFIG" <<EOF
sip:
  room_prefix: "test-sip-"
  allowed_addresses: ["127.0.0.1"]
  hook_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  hooks:
    - {host: "tenant.test", url: "https://sink:8443/hooks"}
EOF
  $PY -c 'import sys; from pathlib import Path; from sayna_sip.cli.devca import dev_ca; dev_ca(Path(sys.argv[1]))' "$WORK/data"
  chmod -R a+rX "$WORK/data" && chmod a+r "$WORK/data/dev-ca/ca.key"  # the sink runs as uid 10001
}

health_loop() { # podman runs healthchecks from systemd timers, which this machine lacks
  while true; do
    for id in $(P ps -q 2>/dev/null); do  # this podman runs only our projects
      PT=10 P healthcheck run "$id" >/dev/null 2>&1 || true
    done
    sleep 1
  done
}

stack_up() {
  health_loop & HEALTH_PID=$!
  PT=300 DC up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; DC logs --tail 30; return 1; }
  wait_ready
}

wait_ready() {
  local deadline=$((SECONDS + 120))
  until curl -fsS "http://127.0.0.1:$INGRESS_PUBLISH/readyz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { say "ingress not ready on :$INGRESS_PUBLISH"; DC ps; DC logs --tail 30; return 1; }
    sleep 0.5
  done
  # Not `| grep -q`: under pipefail grep's early exit makes `logs` die of SIGPIPE.
  DC logs provisioner 2>&1 | grep -E 'livekit_sip_skipped.*LIVEKIT_URL_not_set' >/dev/null \
    || { say "provisioner did not skip LiveKit"; DC logs provisioner; return 1; }
}

sink_log() { DC logs --no-color sink >"$WORK/sink.log" 2>&1; }

await_delivered() { # await_delivered IDS_FILE TIMEOUT_S
  local deadline=$((SECONDS + $2))
  while true; do
    sink_log
    if $PY -m tests.compose.drive check "$1" "$WORK/sink.log" >"$WORK/check.out"; then
      say "$(cat "$WORK/check.out")"; return 0
    fi
    [ $SECONDS -lt $deadline ] || { say "not all delivered: $(cat "$WORK/check.out")"; DC logs --tail 20 forwarder router; return 1; }
    sleep 1
  done
}

signed_delivery() {
  $PY -m tests.compose.drive send "http://127.0.0.1:$INGRESS_PUBLISH/livekit/webhook" 1 one >"$WORK/one.ids" || return 1
  await_delivered "$WORK/one.ids" 60
}

scale_and_kill() {
  local victim count
  PT=300 DC up -d --no-build --no-recreate --scale forwarder=3 >>"$WORK/up.log" 2>&1 || { tail -20 "$WORK/up.log"; return 1; }
  count=$(P ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=forwarder" | wc -l)
  [ "$count" = 3 ] || { say "expected 3 forwarders, found $count"; return 1; }
  wait_ready || return 1
  $PY -m tests.compose.drive send "http://127.0.0.1:$INGRESS_PUBLISH/livekit/webhook" 300 kill --seconds 6 \
    >"$WORK/kill.ids" & SENT=$!
  local deadline=$((SECONDS + 60))
  until [ "$(wc -l <"$WORK/kill.ids")" -ge 60 ]; do
    [ $SECONDS -lt $deadline ] || { say "sending stalled"; return 1; }
    sleep 0.2
  done
  victim=$(P ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=forwarder" | sed -n 1p)
  P kill -s KILL "$victim" >/dev/null || return 1
  say "killed forwarder $victim after $(wc -l <"$WORK/kill.ids") of 300 events were sent"
  timeout 120 tail --pid=$SENT -f /dev/null; wait $SENT || { say "sending failed"; return 1; }
  await_delivered "$WORK/kill.ids" 120
}

down_clean() {
  PT=180 DC down -v --remove-orphans -t 10 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; return 1; }
  local left
  left=$(P ps -aq --filter "label=com.docker.compose.project=$PROJECT"
         P network ls -q --filter "label=com.docker.compose.project=$PROJECT"
         P volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$left" ] || { say "left behind after down -v: $left"; return 1; }
}

# --- the clustered stack (compose.cluster.yaml) ---------------------------------------
cid() { # cid SERVICE: the id of the first running container of SERVICE
  P ps -q --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" | sed -n 1p
}

jsz() { # the JetStream report of the first nats node that answers (streams, consumers)
  local n id
  for n in 1 2 3; do
    id=$(cid "nats-$n")
    [ -n "$id" ] || continue
    PT=10 P exec "$id" wget -q -T 3 -O - \
      "http://127.0.0.1:8222/jsz?accounts=true&streams=true&consumers=true&config=true" \
      2>/dev/null && return 0
  done
  return 1
}

cluster_up() {
  PROJECT=$PROJECT-cluster COMPOSE_FILE=compose.cluster.yaml
  PT=400 DC up -d --no-build >"$WORK/cluster-up.log" 2>&1 \
    || { cat "$WORK/cluster-up.log"; DC logs --tail 30; return 1; }
  wait_ready || return 1
  jsz >"$WORK/jsz.json" || { say "no nats node answered /jsz"; return 1; }
  $PY -m tests.compose.cluster replicas "$WORK/jsz.json"  # every stream and bucket R3
}

forwarder_metrics() { # every forwarder's /metrics, one after the other
  local id
  for id in $(P ps -q --filter "label=com.docker.compose.project=$PROJECT" \
      --filter "label=com.docker.compose.service=forwarder"); do
    PT=20 P exec "$id" python -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:3003/metrics', timeout=5).read().decode())" || return 1
  done
}

sent() { wc -l <"$WORK/cluster.ids"; }

await_sent() { # await_sent N: until N events were acknowledged (or the sender ended)
  local deadline=$((SECONDS + 120))
  until [ "$(sent)" -ge "$1" ] || ! kill -0 "$SENT" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { say "sending stalled at $(sent)"; return 1; }
    sleep 0.2
  done
}

cluster_faults() {
  local leader new started id count=600
  DC logs --no-color balancer >"$WORK/balancer-before.log" 2>&1
  $PY -m tests.compose.drive send "http://127.0.0.1:$INGRESS_PUBLISH/livekit/webhook" $count clu \
    --seconds 60 --retry-for 15 >"$WORK/cluster.ids" 2>"$WORK/cluster.err" & SENT=$!
  await_sent 100 || return 1
  jsz >"$WORK/jsz.json" && leader=$($PY -m tests.compose.cluster leader "$WORK/jsz.json" LK_EVENTS) \
    || { say "no LK_EVENTS leader"; return 1; }
  started=$(date +%s.%N)
  P kill -s KILL "$(cid "$leader")" >/dev/null || return 1
  say "SIGKILLed $leader (the LK_EVENTS leader) after $(sent) of $count events were acked"
  local deadline=$((SECONDS + 60))
  until jsz >"$WORK/jsz.json" && new=$($PY -m tests.compose.cluster leader "$WORK/jsz.json" LK_EVENTS) \
        && [ "$new" != "$leader" ]; do
    [ $SECONDS -lt $deadline ] || { say "no new LK_EVENTS leader"; return 1; }
    sleep 0.2
  done
  say "LK_EVENTS leader $new elected $(elapsed "$started") after the kill"
  await_sent 250 || return 1
  id=$(cid ingress-1)
  P kill -s KILL "$id" >/dev/null || return 1
  say "SIGKILLed ingress-1 after $(sent) acked"
  await_sent 400 || return 1
  id=$(cid router)
  P kill -s KILL "$id" >/dev/null || return 1
  say "SIGKILLed one of the two routers after $(sent) acked"
  started=$(date +%s.%N)
  timeout 300 tail --pid=$SENT -f /dev/null; wait $SENT || { tail -5 "$WORK/cluster.err"; say "sending failed"; return 1; }
  say "$(tail -1 "$WORK/cluster.err")"
  await_delivered "$WORK/cluster.ids" 180 || return 1
  say "all acked events delivered $(elapsed "$started") after the last was acked"
  # Settled: nothing pending or awaiting an ack, so no redelivery can add a duplicate.
  deadline=$((SECONDS + 180))
  until jsz >"$WORK/jsz.json" && $PY -m tests.compose.cluster settled "$WORK/jsz.json"; do
    [ $SECONDS -lt $deadline ] || { say "consumers never settled"; return 1; }
    sleep 1
  done
  sink_log
  DC logs --no-color balancer >"$WORK/balancer.log" 2>&1
  grep -E "Server ingress/" "$WORK/balancer.log" | sed 's/^/compose-test: balancer: /' || true
  # The forwarders' retries and attempts, to read a failure by (not counted: best effort).
  forwarder_metrics >"$WORK/forwarders.metrics" || say "a forwarder did not answer /metrics"
  $PY -m tests.compose.cluster report "$WORK/cluster.ids" "$WORK/sink.log" "$WORK/jsz.json" \
    "$WORK/balancer.log" "$WORK/balancer-before.log" "$WORK/forwarders.metrics"
}

step base-rootfs base_tar
step haproxy-rootfs haproxy_tar
say "podman state in $WORK"
step podman-service start_service
step base-images import_bases
step project-image build_image
step image-checks check_image
prepare_config
step compose-up stack_up
step signed-delivery signed_delivery
step scale-3-kill-1 scale_and_kill
step down-v down_clean
CLUSTER_T0=$(date +%s.%N)
step cluster-up cluster_up
step cluster-node-ingress-router-kills cluster_faults
step cluster-down-v down_clean
say "cluster run took $(elapsed "$CLUSTER_T0")"
say "PASSED"
