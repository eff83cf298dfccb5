#!/usr/bin/env bash
# Plants each known bug and shows which check catches it; fails if one goes
# unnoticed. Prints "bug | caught by".
#
# - Core bugs (paxos-core, a `--cfg paxid_bug="..."`, never a feature, so no
#   product build can switch one on): the simulation, the partial-partition
#   simulation, the model check (not for no_stickiness: it turns pre-vote
#   off) and the unit tests run against each.
# - Driver bugs (acceptor, learner: `PAXID_PLANTED_BUG=<name>` at build
#   time, see crates/service/src/planted.rs): the test named for each runs
#   against a build that carries it; the normal binaries are rebuilt after.
#
#   scripts/planted-bugs.sh            # every bug (make planted-bugs)
#   scripts/planted-bugs.sh ballot_reuse acceptor_unsynced_write
#   SEEDS=5000 scripts/planted-bugs.sh  # more simulation seeds per bug
set -u
cd "$(dirname "$0")/.."

core_bugs=(accept_below_promise no_adopt_highest reply_before_persist ballot_reuse hole_new_allocation rejoin_blank stop_sign_ignored no_stickiness keys_not_recovered join_unfinished_rebuild)
# Each driver bug and the test that must catch it (cargo test arguments).
declare -A driver_test=(
    [acceptor_unsynced_write]="-p paxid-acceptor --test fsync_order"
    [acceptor_reply_before_fsync]="-p paxid-acceptor --test fsync_order"
    [learner_cursor_before_2xx]="-p paxid-learner --test delivery a_failed_message_is_retried_with_the_same_id_and_body"
    [learner_delivers_void]="-p paxid-learner --lib store::tests::void_allocations_are_dropped_and_counters_persist"
)
driver_bugs=(acceptor_unsynced_write acceptor_reply_before_fsync learner_cursor_before_2xx learner_delivers_void)
bugs=("$@")
if [ ${#bugs[@]} -eq 0 ]; then
    bugs=("${core_bugs[@]}" "${driver_bugs[@]}")
fi
normal_target="${CARGO_TARGET_DIR:-$HOME/.cache/paxid-target}"
seeds="${SEEDS:-3000}"
# A model check of a buggy core stops after this many states (it would
# otherwise go on to exhaust the space after the first discovery).
model_states_max="${MODEL_STATES_MAX:-4000000}"
# Each bug gets its own target directory: RUSTFLAGS rebuild every crate.
base_dir="${PAXID_BUGS_TARGET_DIR:-$HOME/.cache/paxid-bugs}"
log_dir="$(mktemp -d)"
missed=0
rows=()

rebuild_normal=0
for bug in "${bugs[@]}"; do
    if [ -n "${driver_test[$bug]:-}" ]; then
        echo "== $bug: cargo test ${driver_test[$bug]}" >&2
        rebuild_normal=1
        # shellcheck disable=SC2086
        env -u RUSTFLAGS CARGO_TARGET_DIR="$normal_target" PAXID_PLANTED_BUG="$bug" \
            cargo test --release ${driver_test[$bug]} -- --nocapture >"$log_dir/$bug.test" 2>&1
        failed_tests="$(grep -o '^test [a-z_:]* \.\.\. FAILED' "$log_dir/$bug.test" | awk '{print $2}' | paste -sd, -)"
        if [ -n "$failed_tests" ]; then
            rows+=("$bug | cargo test ${driver_test[$bug]} ($failed_tests)")
        else
            rows+=("$bug | NOT CAUGHT | logs in $log_dir")
            missed=1
        fi
        continue
    fi
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

    echo "== $bug: partial-partition simulation" >&2
    cargo test --release -p paxos-core --test simulation a_partial_partition \
        -- --nocapture >"$log_dir/$bug.partial" 2>&1
    partial_failure="$(grep -m1 -o 'partial partition failed at seed [0-9]*: .*' "$log_dir/$bug.partial" | cut -c1-180)"
    if [ -n "$partial_failure" ]; then
        caught+=("partial-partition simulation (${partial_failure#partial partition failed at })")
    fi

    extra=()
    model_test=model_check_two_slots
    # A reused ballot needs a restarted proposer that campaigns again.
    [ "$bug" = ballot_reuse ] && extra=(PAXID_MODEL_RESTART_CAMPAIGNS=1)
    # A blank acceptor that votes needs a lost disk.
    [ "$bug" = rejoin_blank ] && model_test=model_check_disk_loss
    # Slots after a stop sign need a reconfiguration.
    [ "$bug" = stop_sign_ignored ] && model_test=model_check_reconfiguration
    # Pre-vote is liveness only and the model check turns it off.
    [ "$bug" = no_stickiness ] && model_test=
    # The model check makes no keyed requests.
    [ "$bug" = keys_not_recovered ] && model_test=
    # The model check rebuilds without the members plan.
    [ "$bug" = join_unfinished_rebuild ] && model_test=
    if [ -n "$model_test" ]; then
        echo "== $bug: model check" >&2
        env "${extra[@]}" PAXID_MODEL_STATES_MAX="$model_states_max" timeout 900 \
            cargo test --release -p paxos-core --test model_check "$model_test" \
            -- --nocapture >"$log_dir/$bug.model" 2>&1
        broken="$(grep -m1 -o 'property "[^"]*" broken: .*' "$log_dir/$bug.model" | cut -c1-110)"
        if [ -n "$broken" ]; then
            depth="$(grep -A200 -m1 'property "' "$log_dir/$bug.model" | grep -c '^  [A-Z]')"
            caught+=("model check ($broken; $depth steps)")
        fi
    fi

    echo "== $bug: unit tests" >&2
    cargo test --release -p paxos-core --lib --test proposer --test idempotency >"$log_dir/$bug.unit" 2>&1
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

if [ "$rebuild_normal" = 1 ]; then
    echo "== rebuilding the normal binaries (no planted bug)" >&2
    env -u RUSTFLAGS -u PAXID_PLANTED_BUG CARGO_TARGET_DIR="$normal_target" \
        cargo build --release --workspace --bins --tests >"$log_dir/rebuild" 2>&1 || { cat "$log_dir/rebuild" >&2; missed=1; }
fi

echo
echo "bug | caught by (seed or steps, and what broke)"
echo "--- | ---"
printf '%s\n' "${rows[@]}"
echo "logs: $log_dir"
exit "$missed"
