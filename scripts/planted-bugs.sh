#!/usr/bin/env bash
# Plants each known bug in paxos-core (a `--cfg paxid_bug="..."`, never a
# feature, so no product build can switch one on), then runs the simulation,
# the model check and the unit tests, and expects each bug to be caught.
# Prints "bug | caught by | seed/steps" and fails if a bug goes unnoticed.
#
#   scripts/planted-bugs.sh            # every bug
#   scripts/planted-bugs.sh ballot_reuse
#   SEEDS=5000 scripts/planted-bugs.sh  # more simulation seeds per bug
set -u
cd "$(dirname "$0")/.."

bugs=("$@")
if [ ${#bugs[@]} -eq 0 ]; then
    bugs=(accept_below_promise no_adopt_highest reply_before_persist ballot_reuse hole_new_allocation rejoin_blank stop_sign_ignored)
fi
seeds="${SEEDS:-3000}"
# A model check of a buggy core stops after this many states (it would
# otherwise go on to exhaust the space after the first discovery).
model_states_max="${MODEL_STATES_MAX:-4000000}"
# Each bug gets its own target directory: RUSTFLAGS rebuild every crate.
base_dir="${PAXID_BUGS_TARGET_DIR:-$HOME/.cache/paxid-bugs}"
log_dir="$(mktemp -d)"
missed=0
rows=()

for bug in "${bugs[@]}"; do
    export CARGO_TARGET_DIR="$base_dir/$bug"
    export RUSTFLAGS="--cfg paxid_bug=\"$bug\""
    echo "== $bug: building" >&2
    if ! cargo test --release -p paxos-core --no-run >"$log_dir/$bug.build" 2>&1; then
        cat "$log_dir/$bug.build" >&2
        rows+=("$bug | BUILD FAILED | -")
        missed=1
        continue
    fi

    caught=()
    echo "== $bug: simulation, $seeds seeds" >&2
    PAXID_SIM_SEEDS="$seeds" cargo test --release -p paxos-core --test simulation simulation_seeds \
        -- --nocapture >"$log_dir/$bug.sim" 2>&1
    sim_failure="$(grep -m1 -o 'simulation failed at seed [0-9]*: .*' "$log_dir/$bug.sim" | cut -c1-130)"
    if [ -n "$sim_failure" ]; then
        caught+=("simulation (${sim_failure#simulation failed at })")
    fi

    echo "== $bug: model check" >&2
    extra=()
    model_test=model_check_two_slots
    # A reused ballot needs a restarted proposer that campaigns again.
    [ "$bug" = ballot_reuse ] && extra=(PAXID_MODEL_RESTART_CAMPAIGNS=1)
    # A blank acceptor that votes needs a lost disk.
    [ "$bug" = rejoin_blank ] && model_test=model_check_disk_loss
    # Slots after a stop sign need a reconfiguration.
    [ "$bug" = stop_sign_ignored ] && model_test=model_check_reconfiguration
    env "${extra[@]}" PAXID_MODEL_STATES_MAX="$model_states_max" timeout 900 \
        cargo test --release -p paxos-core --test model_check "$model_test" \
        -- --nocapture >"$log_dir/$bug.model" 2>&1
    broken="$(grep -m1 -o 'property "[^"]*" broken: .*' "$log_dir/$bug.model" | cut -c1-110)"
    if [ -n "$broken" ]; then
        depth="$(grep -A200 -m1 'property "' "$log_dir/$bug.model" | grep -c '^  [A-Z]')"
        caught+=("model check ($broken; $depth steps)")
    fi

    echo "== $bug: unit tests" >&2
    cargo test --release -p paxos-core --lib --test proposer >"$log_dir/$bug.unit" 2>&1
    failed_tests="$(grep -o '^test [a-z_:]* \.\.\. FAILED' "$log_dir/$bug.unit" | awk '{print $2}' | paste -sd, -)"
    if [ -n "$failed_tests" ]; then
        caught+=("unit tests ($failed_tests)")
    fi

    if [ ${#caught[@]} -eq 0 ]; then
        rows+=("$bug | NOT CAUGHT | logs in $log_dir")
        missed=1
    else
        joined="$(printf '%s; ' "${caught[@]}")"
        rows+=("$bug | ${joined%; }")
    fi
done

echo
echo "bug | caught by (seed or steps, and what broke)"
echo "--- | ---"
printf '%s\n' "${rows[@]}"
echo "logs: $log_dir"
exit "$missed"
