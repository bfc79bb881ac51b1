#!/usr/bin/env bash
# make demo: run eventhost with config.hcl against Redis (a private
# redis-server on a free port when nothing answers at the configured address),
# publish synthetic orders the tutorial's way and print the report.
set -euo pipefail
cd "$(dirname "$0")/.."

ORDERS=${ORDERS:-5000}
addr=${EVENTHOST_REDIS_ADDRESS:-127.0.0.1:6379}
host=${addr%:*} port=${addr##*:}
workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

answers() { # does something speak Redis at $1:$2?
  exec 3<>"/dev/tcp/$1/$2" 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply
  read -r -t 2 reply <&3 || true
  exec 3>&-
  [[ "$reply" == +PONG* || "$reply" == -NOAUTH* ]]
}

if answers "$host" "$port"; then
  echo "== using Redis at $addr"
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 16379)
  addr=127.0.0.1:$port
  echo "== no Redis at ${EVENTHOST_REDIS_ADDRESS:-127.0.0.1:6379}; starting a private redis-server on $addr"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" >"$workdir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do answers 127.0.0.1 "$port" && break; sleep 0.1; done
fi
export EVENTHOST_REDIS_ADDRESS=$addr
export EVENTHOST_METRICS_LISTEN=${EVENTHOST_METRICS_LISTEN:-127.0.0.1:0}

echo "== eventhost run -config config.hcl (log: $workdir/eventhost.log)"
bin/eventhost run -config config.hcl >"$workdir/eventhost.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'subscribed' "$workdir/eventhost.log" && break; sleep 0.1; done
grep -q 'subscribed' "$workdir/eventhost.log" || { cat "$workdir/eventhost.log"; exit 1; }

seed=$(date +%s)
echo "== eventhost publish -n $ORDERS -seed $seed"
bin/eventhost publish -config config.hcl -n "$ORDERS" -seed "$seed" -wait 60s

echo "== eventhost report"
bin/eventhost report -config config.hcl

kill -TERM "${pids[-1]}"
wait "${pids[-1]}" && echo "== eventhost stopped cleanly (exit 0)"
unset 'pids[-1]'
