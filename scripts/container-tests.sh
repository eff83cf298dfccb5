#!/usr/bin/env bash
# Container test suites, run by `make test` (and `make soak`, with PAXID_SOAK=1):
#
#   1. image-test: deploy/test-image.sh builds a throw-away image from a
#      stand-in binary and checks name resolution, the user, /data (~20 s);
#   2. fault suite: builds paxid:latest from the release binaries with
#      deploy/build-image.sh, then runs tests/tests/containers.rs against the
#      compose cluster: partitions, pauses and kills, and an acceptor's lost
#      disk (container and volume removed, started again on a fresh volume
#      and rebuilt by the leader), while clients record a history, then the
#      linearizability and delivery checks (a few minutes;
#      PAXID_SOAK=1 repeats the fault schedule with longer faults).
#
# Without a reachable Docker engine it prints a loud SKIPPED banner and exits
# 0. At the end it prints which suites ran, passed, failed or were skipped.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/paxid-target), IMAGE
# (default paxid:latest), PAXID_SOAK, PAXID_SOAK_ROUNDS, PAXID_CONTAINER_LOGS
# (where every container's log is saved at teardown; default
# $CARGO_TARGET_DIR/container-logs).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paxid-target}"
bin_dir="$CARGO_TARGET_DIR/release"
image="${IMAGE:-paxid:latest}"
# A compose project of our own, so the EXIT trap can remove it even if the
# test process dies before its own teardown runs.
project="paxidct$$"

declare -A result=([image-test]="not run" [fault-suite]="not run")

summary() {
  local rc=$?
  docker-compose -p "$project" -f deploy/docker-compose.yml -f deploy/docker-compose.test.yml \
    down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  docker image rm --force "paxid-test-subscriber:$project" >/dev/null 2>&1 || true
  echo "=================================================================="
  echo "container suites:"
  echo "  image-test (deploy/test-image.sh):            ${result[image-test]}"
  echo "  fault suite (tests/tests/containers.rs$([[ -n "${PAXID_SOAK:-}" ]] && echo ", soak")): ${result[fault-suite]}"
  echo "=================================================================="
  exit "$rc"
}

if ! docker info >/dev/null 2>&1; then
  echo "=================================================================="
  echo "SKIPPED: container tests (no Docker engine reachable on this machine)"
  echo "  not run: deploy/test-image.sh, tests/tests/containers.rs"
  echo "=================================================================="
  exit 0
fi
command -v docker-compose >/dev/null || { echo "container-tests: docker-compose not found" >&2; exit 1; }
trap summary EXIT

echo "container tests: image build and name resolution (deploy/test-image.sh)"
result[image-test]="FAILED"
deploy/test-image.sh
result[image-test]="passed"

# The binaries the image holds; a no-op after `make build`.
cargo build --release --workspace --bins
echo "container tests: building $image from $bin_dir"
IMAGE="$image" deploy/build-image.sh "$bin_dir"

logs="${PAXID_CONTAINER_LOGS:-$CARGO_TARGET_DIR/container-logs}"
rm -rf "$logs"
echo "container tests: fault suite across containers (tests/tests/containers.rs); logs in $logs"
result[fault-suite]="FAILED (container logs in $logs)"
PAXID_CONTAINER_TESTS=1 PAXID_IMAGE="$image" PAXID_CONTAINER_PROJECT="$project" PAXID_CONTAINER_LOGS="$logs" \
  cargo test --release -p paxid-tests --test containers -- --nocapture --test-threads=1
result[fault-suite]="passed"
