#!/usr/bin/env bash
# Test deploy/build-image.sh without the real binaries: compile a small
# dynamically linked C program (testdata/placeholder.c) that resolves names
# with getaddrinfo, install it under the four binary names, build a
# throw-away image from it, and check inside containers on a user-defined
# Docker network that:
#
#   - every binary starts (loader and libraries are in the image);
#   - another container's name, and a dotted alias shaped like a Kubernetes
#     name (acceptor-0.acceptor-hs), resolve to that container's address;
#   - an unknown name does not resolve (the check can fail);
#   - the process runs as paxid (65532) and the user has a passwd entry;
#   - a fresh named volume on /data is writable, with a read-only root.
#
# Everything it creates (image, network, containers, volume) is removed on exit.
# Usage: deploy/test-image.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="paxid-imagetest-$$"
image="$tag:latest"
net="$tag-net"
vol="$tag-data"
peer="$tag-acceptor-0"
work="$(mktemp -d)"

cleanup() {
    docker rm -f "$peer" >/dev/null 2>&1 || true
    docker network rm "$net" >/dev/null 2>&1 || true
    docker volume rm "$vol" >/dev/null 2>&1 || true
    docker image rm "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

gcc -O2 -o "$work/placeholder" "$here/testdata/placeholder.c"
for b in paxid-acceptor paxid-sequencer paxid-learner paxid; do
    cp "$work/placeholder" "$work/$b"
done

IMAGE="$image" "$here/build-image.sh" "$work"

docker network create "$net" >/dev/null
# The peer plays acceptor-0: reachable by its container name and by two
# aliases, the short one compose uses and the dotted one Kubernetes uses.
docker run -d --name "$peer" --network "$net" \
    --network-alias acceptor-0 --network-alias acceptor-0.acceptor-hs \
    "$image" /usr/local/bin/paxid-acceptor --sleep >/dev/null
peer_ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$peer")"
echo "peer $peer has address $peer_ip on $net"

run() { docker run --rm --network "$net" "$@"; }

for b in paxid-acceptor paxid-sequencer paxid-learner paxid; do
    if out="$(run "$image" "/usr/local/bin/$b" --whoami 2>&1)" && [[ "$out" == "paxid 65532" ]]; then
        pass "$b starts and runs as paxid (65532)"
    else
        fail "$b --whoami: $out"
    fi
done

for name in "$peer" acceptor-0 acceptor-0.acceptor-hs; do
    if out="$(run "$image" /usr/local/bin/paxid-sequencer "$name" 2>&1)" && grep -qx "$name $peer_ip" <<<"$out"; then
        pass "resolves $name -> $peer_ip"
    else
        fail "resolve $name: $out"
    fi
done

if out="$(run "$image" /usr/local/bin/paxid-sequencer acceptor-9.acceptor-hs 2>&1)"; then
    fail "unknown name acceptor-9.acceptor-hs resolved: $out"
else
    pass "unknown name does not resolve ($out)"
fi

docker volume create "$vol" >/dev/null
if out="$(run --read-only -v "$vol:/data" "$image" /usr/local/bin/paxid-acceptor --write /data/probe 2>&1)"; then
    pass "fresh named volume on /data is writable by paxid with a read-only root ($out)"
else
    fail "write to /data: $out"
fi
if out="$(run "$image" /usr/local/bin/paxid-acceptor --write /usr/local/bin/probe 2>&1)"; then
    fail "paxid could write into /usr/local/bin: $out"
else
    pass "root file system is not writable by paxid ($out)"
fi

start=$(date +%s)
docker stop "$peer" >/dev/null
pass "peer stopped on SIGTERM in $(($(date +%s) - start)) s"

if ((failures > 0)); then
    echo "test-image: $failures check(s) failed" >&2
    exit 1
fi
echo "test-image: all checks passed"
