#!/usr/bin/env bash
# Starts a local paxid cluster as separate processes: 3 acceptors, 2
# sequencers, 1 learner. Data lives under ./data (kept between runs).
# Ctrl-C (or SIGTERM) stops every process cleanly.
set -euo pipefail

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/paxid-target}/release}
DATA=${PAXID_DATA:-./data}
HOST=127.0.0.1
ACCEPTOR_PORTS=(7001 7002 7003)
SEQUENCER_PORTS=(8080 8081)
LEARNER_PORT=8090
LOGS="$DATA/logs"
mkdir -p "$LOGS"

for bin in paxid-acceptor paxid-sequencer paxid-learner paxid; do
  [ -x "$BIN_DIR/$bin" ] || { echo "run-local: $BIN_DIR/$bin is missing; run 'make build'" >&2; exit 1; }
done
for port in "${ACCEPTOR_PORTS[@]}" "${SEQUENCER_PORTS[@]}" $LEARNER_PORT; do
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    echo "run-local: port $port is already in use (another 'make run'?)" >&2; exit 1
  fi
done

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping ${#pids[@]} processes..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped; data kept in $DATA"
  exit 0
}
trap stop INT TERM EXIT

# Each process runs in its own session, so that Ctrl-C reaches only this
# script, which then stops them in order (SIGTERM, graceful drain) instead of
# racing them to a "process exited" message.
acceptor_urls=()
for i in "${!ACCEPTOR_PORTS[@]}"; do
  port=${ACCEPTOR_PORTS[$i]}
  setsid "$BIN_DIR/paxid-acceptor" --listen "$HOST:$port" --data-dir "$DATA/acceptor-$i" >"$LOGS/acceptor-$i.log" 2>&1 &
  pids+=($!)
  acceptor_urls+=("http://$HOST:$port")
done
ACCEPTORS=$(IFS=,; echo "${acceptor_urls[*]}")
LEARNER_URL="http://$HOST:$LEARNER_PORT"

setsid "$BIN_DIR/paxid-learner" --listen "$HOST:$LEARNER_PORT" --data-dir "$DATA/learner" \
  --acceptors "$ACCEPTORS" --allow-private-webhooks >"$LOGS/learner.log" 2>&1 &
pids+=($!)

for i in "${!SEQUENCER_PORTS[@]}"; do
  port=${SEQUENCER_PORTS[$i]}
  setsid "$BIN_DIR/paxid-sequencer" --listen "$HOST:$port" --node-id $((i + 1)) --acceptors "$ACCEPTORS" \
    --advertise-url "http://$HOST:$port" --learners "$LEARNER_URL" >"$LOGS/sequencer-$((i + 1)).log" 2>&1 &
  pids+=($!)
done

CLIENT_URL="http://$HOST:${SEQUENCER_PORTS[0]}"
printf 'waiting for a leader'
for _ in $(seq 1 100); do
  if curl -fsS "$CLIENT_URL/readyz" >/dev/null 2>&1; then break; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo; echo "run-local: a process exited; see $LOGS" >&2; exit 1; }
  done
  printf '.'; sleep 0.2
done
echo

cat <<EOT

paxid is running (logs in $LOGS):
  sequencers  $CLIENT_URL  http://$HOST:${SEQUENCER_PORTS[1]}
  acceptors   $ACCEPTORS
  learner     $LEARNER_URL

Get IDs:
  curl -X POST $CLIENT_URL/next-id
  curl -X POST $CLIENT_URL/next-id -H 'content-type: application/json' -d '{"count": 10, "sequence": "orders"}'
  $BIN_DIR/paxid next-id --url $CLIENT_URL --count 10

Subscribe a webhook receiver to every allocation:
  curl -X POST $LEARNER_URL/v1/subscriptions -H 'content-type: application/json' -d '{"url": "http://127.0.0.1:9000/hook"}'

Cluster status:
  $BIN_DIR/paxid status --acceptors $ACCEPTORS --sequencers $CLIENT_URL,http://$HOST:${SEQUENCER_PORTS[1]} --learner $LEARNER_URL

Press Ctrl-C to stop.
EOT
wait -n "${pids[@]}" || true
echo "run-local: a process exited; see $LOGS" >&2
exit 1
