#!/usr/bin/env bash
# `make bench`: paxid, the ceiling and etcd side by side, in one run on this
# machine, at 1, 16 and 256 clients and count 1 and 1000 (etcd: count 1
# only), each point loaded by the same generator (`paxid bench`). Writes the
# "## Side by side" section of docs/benchmarks.md and keeps its other
# sections.
#
#   paxid    3 paxid-acceptor (RocksDB, fsync on every vote), 2 paxid-sequencer,
#            1 paxid-learner with one webhook subscriber (receiver.py)
#   ceiling  paxid-ceiling: the same HTTP stack over an in-memory counter
#   etcd     etcd 3.4 from Debian's etcd-server package, 3 members on loopback;
#            the ID is the revision a put through the JSON gateway returns
#
# Environment (all optional):
#   PAXID_BENCH_DURATION  per point, default 8s
#   PAXID_BENCH_CLIENTS   default "1 16 256"
#   PAXID_BENCH_COUNTS    default "1 1000"
#   PAXID_BENCH_SYSTEMS   default "paxid ceiling etcd"
#   PAXID_BENCH_OUTPUT    default docs/benchmarks.md
#   PAXID_BENCH_SKIP_BUILD=1  use the binaries already in $CARGO_TARGET_DIR/release
#   CARGO_TARGET_DIR      default /root/.cache/paxid-target
#
# Every process it starts is stopped on exit. It exits non-zero when a
# system could not be started or measured, after writing what it has.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/bench"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/paxid-target}
BIN="$CARGO_TARGET_DIR/release"
DURATION=${PAXID_BENCH_DURATION:-8s}
CLIENTS=${PAXID_BENCH_CLIENTS:-"1 16 256"}
COUNTS=${PAXID_BENCH_COUNTS:-"1 1000"}
SYSTEMS=${PAXID_BENCH_SYSTEMS:-"paxid ceiling etcd"}
OUTPUT=${PAXID_BENCH_OUTPUT:-$ROOT/docs/benchmarks.md}
ETCD_CACHE=${PAXID_BENCH_ETCD_DIR:-$HOME/.cache/paxid-bench/etcd}
READY_TIMEOUT_S=60

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paxid-bench.XXXXXX")
RESULTS="$WORK/results"
LOGS="$WORK/logs"
mkdir -p "$RESULTS" "$LOGS"
: >"$RESULTS/setup.txt"
: >"$RESULTS/notes.txt"
PIDS=()
FAILED=0

say() { printf '\n== %s\n' "$*" >&2; }
note() { echo "$*" >>"$RESULTS/notes.txt"; echo "bench: $*" >&2; }

# Stops what this script started, by PID: TERM, then KILL after 5 s.
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

cleanup() {
    stop_all
    if [ "$FAILED" = 0 ]; then rm -rf "$WORK"; else echo "bench: logs kept in $LOGS" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, logging to $LOGS/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
}

# free_ports N: N distinct TCP ports free on 127.0.0.1 right now.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# wait_ok URL [SECONDS]: until GET URL answers 2xx; fails at once if a
# process this script started has exited.
wait_ok() {
    local deadline=$((SECONDS + ${2:-$READY_TIMEOUT_S})) pid
    until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || { echo "bench: a process exited early (pid $pid)" >&2; return 1; }
        done
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# bench SYSTEM URL CLIENTS COUNT [ARGS...]: one point, saved as JSON.
bench() {
    local system=$1 url=$2 clients=$3 count=$4
    shift 4
    local out="$RESULTS/$system-c$clients-n$count.json"
    say "$system: $clients clients, count $count, $DURATION"
    if ! "$BIN/paxid" --json --url "$url" --timeout-ms 10000 bench --clients "$clients" \
        --duration "$DURATION" --count "$count" "$@" >"$out.tmp"; then
        note "$system at $clients clients, count $count: paxid bench failed (see above)"
        FAILED=1
    fi
    # A report is printed even when the run had errors or order violations.
    if [ -s "$out.tmp" ]; then mv "$out.tmp" "$out"; else rm -f "$out.tmp"; fi
}

bench_points() {
    local system=$1 url=$2 counts=$3
    shift 3
    local count clients
    for count in $counts; do
        for clients in $CLIENTS; do bench "$system" "$url" "$clients" "$count" "$@"; done
    done
}

# Builds every binary; if the workspace does not build, builds at least the
# load generator and the ceiling so the other systems can be measured.
build() {
    say "building release binaries ($CARGO_TARGET_DIR)"
    if ! (cd "$ROOT" && cargo build --release --workspace --bins); then
        note "the workspace did not build; only paxid-cli and paxid-ceiling were built"
        FAILED=1
        (cd "$ROOT" && cargo build --release -p paxid-cli -p paxid-ceiling)
    fi
}

run_paxid() {
    say "paxid: 3 acceptors, 2 sequencers, 1 learner + subscriber"
    local ports
    read -r -a ports <<<"$(free_ports 7)"
    local a=("${ports[@]:0:3}") s=("${ports[@]:3:2}") learner=${ports[5]} receiver=${ports[6]}
    local acceptors="http://127.0.0.1:${a[0]},http://127.0.0.1:${a[1]},http://127.0.0.1:${a[2]}"
    local learner_url="http://127.0.0.1:$learner"
    local i
    for i in 0 1 2; do
        start "acceptor-$i" "$BIN/paxid-acceptor" --listen "127.0.0.1:${a[$i]}" --data-dir "$WORK/acceptor-$i"
    done
    start learner "$BIN/paxid-learner" --listen "127.0.0.1:$learner" --data-dir "$WORK/learner" \
        --acceptors "$acceptors" --allow-private-webhooks
    for i in 0 1; do
        start "sequencer-$i" "$BIN/paxid-sequencer" --listen "127.0.0.1:${s[$i]}" --node-id $((i + 1)) \
            --acceptors "$acceptors" --advertise-url "http://127.0.0.1:${s[$i]}" --learners "$learner_url"
    done
    start receiver python3 "$HERE/receiver.py" "$receiver"
    local sequencers="http://127.0.0.1:${s[0]},http://127.0.0.1:${s[1]}"
    if ! wait_ok "http://127.0.0.1:${s[0]}/readyz"; then
        local name
        for name in acceptor-0 acceptor-1 acceptor-2 learner sequencer-0 sequencer-1; do
            echo "--- $name.log (last lines)" >&2
            tail -n 3 "$LOGS/$name.log" >&2 || true
        done
        note "paxid: the cluster was not ready within ${READY_TIMEOUT_S} s (GET /readyz on sequencer 1); paxid not measured"
        FAILED=1
        stop_all
        return
    fi
    if ! wait_ok "$learner_url/readyz" || ! wait_ok "http://127.0.0.1:$receiver/" 5 ||
        ! "$BIN/paxid" subscribe "http://127.0.0.1:$receiver/hook" --learner "$learner_url" >"$LOGS/subscribe.log" 2>&1; then
        note "paxid: the webhook subscriber could not be set up: $(tail -n 1 "$LOGS/subscribe.log" 2>/dev/null)"
        FAILED=1
    fi
    local url
    url=$(leader_of "$acceptors" "$sequencers" "http://127.0.0.1:${s[0]}")
    echo "paxid: 3 × paxid-acceptor (RocksDB, fsync on every vote), 2 × paxid-sequencer, 1 × paxid-learner with one webhook subscriber; load sent to the leader sequencer" >>"$RESULTS/setup.txt"
    bench_points paxid "$url" "$COUNTS"
    "$BIN/paxid" status --acceptors "$acceptors" --sequencers "$sequencers" --learner "$learner_url" \
        >"$LOGS/status.txt" 2>&1 || true
    cat "$LOGS/status.txt" >&2
    local lag deliveries
    lag=$("$BIN/paxid" --json status --acceptors "$acceptors" --sequencers "$sequencers" --learner "$learner_url" 2>/dev/null |
        python3 -c '
import json, sys
s = json.load(sys.stdin)["learner"]["status"]
subs = "".join(f", subscriber lag {v['"'"'lag_slots'"'"']} slots ({v['"'"'state'"'"']})" for v in s["subscriptions"])
print(f"learned below slot {s['"'"'learned_below'"'"']}{subs}")' 2>/dev/null) || lag="learner status unavailable"
    deliveries=$(curl -fsS --max-time 2 "http://127.0.0.1:$receiver/" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["deliveries"])' 2>/dev/null) || deliveries="?"
    note "paxid learner after the runs: $lag; the subscriber received $deliveries webhook deliveries"
    stop_all
}

# leader_of ACCEPTORS SEQUENCERS FALLBACK: the URL of the sequencer that says it leads.
leader_of() {
    "$BIN/paxid" --json status --acceptors "$1" --sequencers "$2" 2>/dev/null | python3 -c '
import json, sys
status = json.load(sys.stdin)
leaders = [p["url"] for p in status["sequencers"] if p.get("status", {}).get("role") == "leader"]
print(leaders[0] if leaders else sys.argv[1])' "$3" 2>/dev/null || echo "$3"
}

run_ceiling() {
    say "ceiling: paxid-ceiling (in-memory counter, no consensus)"
    local port
    port=$(free_ports 1)
    start ceiling "$BIN/paxid-ceiling" --listen "127.0.0.1:$port"
    if ! wait_ok "http://127.0.0.1:$port/readyz"; then
        note "ceiling: not ready within ${READY_TIMEOUT_S} s; not measured"
        FAILED=1
        stop_all
        return
    fi
    echo "ceiling: paxid-ceiling, the sequencer's HTTP stack (axum + paxid-service layers, same wire types and validation) answering from an in-memory atomic counter, no consensus, no disk" >>"$RESULTS/setup.txt"
    bench_points ceiling "http://127.0.0.1:$port" "$COUNTS"
    stop_all
}

# The etcd binary: on PATH, or Debian's etcd-server unpacked into $ETCD_CACHE.
find_etcd() {
    if command -v etcd >/dev/null 2>&1; then command -v etcd; return; fi
    local cached="$ETCD_CACHE/usr/bin/etcd"
    if [ ! -x "$cached" ]; then
        local download
        download=$(mktemp -d "$WORK/etcd-deb.XXXX")
        (cd "$download" && { apt-get download etcd-server >&2 2>&1 ||
            { apt-get update >&2 && apt-get download etcd-server >&2; }; }) || return 1
        mkdir -p "$ETCD_CACHE"
        dpkg -x "$download"/etcd-server_*.deb "$ETCD_CACHE" >&2
    fi
    echo "$cached"
}

run_etcd() {
    say "etcd: 3 members on loopback"
    local etcd
    if ! etcd=$(find_etcd) || [ ! -x "$etcd" ]; then
        note "etcd: Debian's etcd-server package could not be fetched; etcd not measured"
        FAILED=1
        return
    fi
    local ports
    read -r -a ports <<<"$(free_ports 6)"
    local cluster="" i
    for i in 0 1 2; do cluster+="${cluster:+,}e$i=http://127.0.0.1:${ports[$((i + 3))]}"; done
    for i in 0 1 2; do
        local client="http://127.0.0.1:${ports[$i]}" peer="http://127.0.0.1:${ports[$((i + 3))]}"
        start "etcd-$i" "$etcd" --name "e$i" --data-dir "$WORK/etcd-$i" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token paxid-bench \
            --logger zap --log-level warn
    done
    for i in 0 1 2; do
        if ! wait_ok "http://127.0.0.1:${ports[$i]}/health"; then
            note "etcd: member $i not healthy within ${READY_TIMEOUT_S} s; etcd not measured"
            FAILED=1
            stop_all
            return
        fi
    done
    local url
    url=$(etcd_leader "${ports[@]:0:3}")
    echo "etcd: $("$etcd" --version | head -n 1) (Debian etcd-server), 3 members on loopback, fsync on (default); ID = header.revision of POST /v3/kv/put through the JSON gateway, sent to the leader member; count 1 only (etcd has no block allocation)" >>"$RESULTS/setup.txt"
    local clients
    for clients in $CLIENTS; do bench etcd "$url" "$clients" 1 --target etcd; done
    stop_all
}

# etcd_leader PORT...: the client URL of the member that is the raft leader.
etcd_leader() {
    local port
    for port in "$@"; do
        if curl -fsS --max-time 2 -X POST -d '{}' "http://127.0.0.1:$port/v3/maintenance/status" 2>/dev/null |
            python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s["leader"] == s["header"]["member_id"] else 1)'; then
            echo "http://127.0.0.1:$port"
            return
        fi
    done
    echo "http://127.0.0.1:$1"
}

main() {
    command -v curl >/dev/null || { echo "bench: curl is needed (apt-get install curl)" >&2; exit 1; }
    command -v python3 >/dev/null || { echo "bench: python3 is needed (apt-get install python3)" >&2; exit 1; }
    [ "${PAXID_BENCH_SKIP_BUILD:-0}" = 1 ] || build
    local system
    for system in $SYSTEMS; do
        case $system in
            paxid) run_paxid ;;
            ceiling) run_ceiling ;;
            etcd) run_etcd ;;
            *) echo "bench: unknown system $system" >&2; exit 2 ;;
        esac
    done
    local command="make bench"
    local overrides
    overrides=$(env | grep -E '^PAXID_BENCH_' | sort | tr '\n' ' ' || true)
    [ -n "$overrides" ] && command="$overrides$command"
    command+=" (scripts/bench/run.sh: $DURATION per point)"
    say "writing $OUTPUT"
    python3 "$HERE/report.py" "$RESULTS" "$OUTPUT" "$command"
    [ "$FAILED" = 0 ] || { echo "bench: some systems failed; see the notes above" >&2; exit 1; }
}

main "$@"
