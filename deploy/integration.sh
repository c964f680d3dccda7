#!/usr/bin/env bash
# The compose topology as local processes: redis-server (AOF), two API replicas, a worker service
# of two processes, and the front (the built web UI and a reverse proxy to the replicas), the only
# entry point used. It checks the front serves the UI, submits a task through the front, follows it
# to `ready`, checks every result and that both replicas serve it, then stops everything. Usage: deploy/integration.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Conditions are waited for generously: on a loaded machine a replica's start-up alone took 6.5 s.
wait_http() {
  for _ in $(seq 600); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not up: $1" >&2; return 1
}
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

REDIS_PORT=$(free_port); API1=$(free_port); API2=$(free_port); FRONT=$(free_port)
export LINKPROBE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export LINKPROBE_ALLOW_PRIVATE=1  # the probed URLs below are the replicas' own loopback endpoints

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --appendonly yes \
  --appendfsync everysec --save "" --logfile "$WORK/redis.log" & PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$PY" -m linkprobe api --port "$API1" >"$WORK/api1.log" 2>&1 & PIDS+=($!)
"$PY" -m linkprobe api --port "$API2" >"$WORK/api2.log" 2>&1 & PIDS+=($!)
"$PY" -m linkprobe worker --processes 2 >"$WORK/worker.log" 2>&1 & WORKER=$!; PIDS+=($WORKER)
"$PY" deploy/front.py "$FRONT" "$API1" "$API2" >"$WORK/front.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$API1/readyz"; wait_http "http://127.0.0.1:$API2/readyz"
wait_http "http://127.0.0.1:$FRONT/healthz"
curl -fsS "http://127.0.0.1:$FRONT/" | grep -q '/ui/app.js' || { echo "front does not serve the UI" >&2; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$FRONT/ui/app.js" && curl -fsS "http://127.0.0.1:$FRONT/docs" | grep -q swagger-ui \
  || { echo "front does not serve the UI assets or the API docs" >&2; exit 1; }
echo "front serves the web UI and proxies /docs"
for _ in $(seq 300); do [ "$(pgrep -P "$WORKER" | wc -l)" -ge 2 ] && break; sleep 0.1; done
CHILDREN=$(pgrep -P "$WORKER" | wc -l)
echo "topology: redis :$REDIS_PORT, api :$API1 :$API2, worker pid $WORKER ($CHILDREN processes), front :$FRONT"
[ "$CHILDREN" -ge 2 ] || { echo "expected 2 worker processes" >&2; exit 1; }

URLS=""
for i in $(seq 1 150); do URLS+="http://127.0.0.1:$API1/healthz?n=$i"$'\n'"http://127.0.0.1:$API2/nope?n=$i"$'\n'; done
TASK=$(printf '%s' "$URLS" | curl -fsS -X POST -H 'content-type: text/plain' --data-binary @- \
  "http://127.0.0.1:$FRONT/api/v1/tasks?name=integration" | json 'd["id"]')
echo "task $TASK submitted through the front"
for _ in $(seq 1200); do
  STATUS=$(curl -fsS "http://127.0.0.1:$FRONT/api/v1/tasks/$TASK" | json 'd["status"]')
  [ "$STATUS" = ready ] && break; sleep 0.1
done
[ "$STATUS" = ready ] || { echo "task not ready: $STATUS" >&2; cat "$WORK/worker.log" >&2; exit 1; }
for port in "$API1" "$API2"; do
  curl -fsS "http://127.0.0.1:$port/api/v1/tasks/$TASK" \
    | json '"replica: done={done} ok={ok} broken={broken}".format(**d["progress"])'
done
ROWS=$(curl -fsS "http://127.0.0.1:$FRONT/api/v1/tasks/$TASK/results?format=ndjson" | wc -l)
PROGRESS=$(curl -fsS "http://127.0.0.1:$FRONT/api/v1/tasks/$TASK" | json '"%(done)d %(ok)d %(broken)d" % d["progress"]')
[ "$ROWS" = 300 ] && [ "$PROGRESS" = "300 150 150" ] || { echo "bad results: $ROWS rows, $PROGRESS" >&2; exit 1; }
echo "integration ok: 300 results (150 ok, 150 broken), served by both replicas"
