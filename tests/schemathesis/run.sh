#!/usr/bin/env bash
# `make schemathesis`: the stack of `sayna-sip up`, production-like (auth on), and
# schemathesis against its /schema with a token: every check, every phase, a bounded
# number of examples, the exceptions of schemathesis.toml. Exits non-zero on any failure
# (the target is 0, issue #29).
set -euo pipefail
cd "$(dirname "$0")/../.."
port=${ST_PORT:-3901}
token=st-token-0123456789abcdef
data=$(mktemp -d)
# A clean environment for the stack: nothing of the caller's SIP_/NATS_/AUTH_ settings.
unset_vars=$(env | grep -E '^(SIP_|NATS_|AUTH_|LIVEKIT_)' | cut -d= -f1 | sed 's/^/-u /' || true)
# shellcheck disable=SC2086
env $unset_vars HOST=127.0.0.1 PORT="$port" ROUTER_PORT=$((port + 1)) \
  FORWARDER_PORT=$((port + 2)) LIVEKIT_API_KEY=devkey \
  LIVEKIT_API_SECRET=devsecret-0123456789abcdef0123456789 \
  SIP_ROOM_PREFIX=sip- SIP_ALLOWED_ADDRESSES=127.0.0.1 \
  SIP_HOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
  SIP_SECRETS_KEY=a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s= \
  AUTH_REQUIRED=true AUTH_API_SECRET=$token PYTHONUNBUFFERED=1 \
  .venv/bin/sayna-sip up --forwarders 1 --data-dir "$data" --nats-port 0 \
  > "$data/up.log" 2>&1 &
stack=$!
trap 'kill -TERM $stack 2>/dev/null; wait $stack 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 $stack 2>/dev/null || { cat "$data/up.log"; exit 1; }
  sleep 0.5
done
.venv/bin/st --config-file tests/schemathesis/schemathesis.toml \
  run "http://127.0.0.1:$port/schema/openapi.json" \
  -H "Authorization: Bearer $token" --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "${ST_EXAMPLES:-10}" --seed "${ST_SEED:-1}" --workers 1 \
  --request-timeout 10 ${ST_ARGS:-}
