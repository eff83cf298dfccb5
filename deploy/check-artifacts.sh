#!/usr/bin/env bash
# Checks the artifacts a user expects next to the code, offline and without
# Docker (k8s/validate.sh runs it, so `make test` does):
#
#   - the Makefile's compose targets: Compose v2 (`docker compose`) when the
#     Docker CLI has it, else `docker-compose`; `compose-down` keeps the data
#     volumes and removes them only with VOLUMES=1 (checked with `make -n`
#     against stand-in `docker` and `docker-compose` commands);
#   - deploy/Dockerfile.registry: a multi-stage build FROM rust:... then
#     debian:...-slim, running as 65532, shipping the four programs (it
#     cannot be built here: no image can be pulled);
#   - LICENSE is the Apache-2.0 text (Cargo.toml's license), CHANGELOG.md is
#     in Keep a Changelog form and names the workspace version.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
fails=0
ok() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
expect() { # description, actual, expected substring, [absent substring]
    if [[ "$2" == *"$3"* && ( -z "${4:-}" || "$2" != *"$4"* ) ]]; then ok "$1"; else fail "$1: got '$2'"; fi
}

fake="$(mktemp -d)"
trap 'rm -rf "$fake"' EXIT
mkdir -p "$fake/v2" "$fake/v1"
# v2: `docker compose version` works.
printf '#!/bin/sh\n[ "$1" = compose ] && [ "$2" = version ] && exit 0\nexit 1\n' >"$fake/v2/docker"
# v1: docker has no compose plugin, docker-compose exists.
printf '#!/bin/sh\nexit 1\n' >"$fake/v1/docker"
printf '#!/bin/sh\nexit 0\n' >"$fake/v1/docker-compose"
chmod +x "$fake"/v2/* "$fake"/v1/*
base_path="$(dirname "$(command -v make)"):/usr/bin:/bin"

down_v2="$(env -u COMPOSE_CMD PATH="$fake/v2:$base_path" make -s -n compose-down)"
expect "make compose-down uses 'docker compose' when the CLI has it" "$down_v2" "docker compose -p paxid -f deploy/docker-compose.yml down"
expect "make compose-down keeps the volumes" "$down_v2" "down" " -v"
down_v1="$(env -u COMPOSE_CMD PATH="$fake/v1:$base_path" make -s -n compose-down VOLUMES=1)"
expect "make compose-down falls back to docker-compose" "$down_v1" "docker-compose -p paxid -f deploy/docker-compose.yml down"
expect "make compose-down VOLUMES=1 removes the volumes" "$down_v1" "down -v"
up="$(env -u COMPOSE_CMD PATH="$fake/v2:$base_path" make -s -n -W image compose-up 2>/dev/null | tail -1)"
expect "make compose-up starts the cluster detached" "$up" "docker compose -p paxid -f deploy/docker-compose.yml up -d"

df=deploy/Dockerfile.registry
froms="$(grep -E '^FROM ' "$df" | awk '{print $2}')"
[[ "$(grep -cE '^FROM ' "$df")" -ge 2 ]] && ok "$df is multi-stage" || fail "$df is not multi-stage"
[[ "$(head -1 <<<"$froms")" == rust:* ]] && ok "$df builds FROM rust" || fail "$df: first stage is not FROM rust"
[[ "$(tail -1 <<<"$froms")" =~ ^debian:.*-slim$ ]] && ok "$df ships FROM debian:*-slim" || fail "$df: last stage is not debian slim"
grep -qE '^USER 65532:65532$' "$df" && ok "$df runs as 65532" || fail "$df: no USER 65532:65532"
for bin in paxid-acceptor paxid-sequencer paxid-learner paxid; do
    grep -qE -- "--bin $bin( |$)" "$df" || fail "$df does not build $bin"
done
grep -q '^ENTRYPOINT' "$df" && fail "$df has an ENTRYPOINT (the manifests name each program)" || ok "$df has no ENTRYPOINT"
[[ -f "$df.dockerignore" ]] && ok "$df.dockerignore exists" || fail "$df.dockerignore is missing"

grep -q '^license = "Apache-2.0"' Cargo.toml || fail "Cargo.toml no longer says Apache-2.0: update LICENSE"
if [[ -f /usr/share/common-licenses/Apache-2.0 ]]; then
    cmp -s LICENSE /usr/share/common-licenses/Apache-2.0 && ok "LICENSE is the Apache-2.0 text" || fail "LICENSE differs from /usr/share/common-licenses/Apache-2.0"
else
    grep -q 'Version 2.0, January 2004' LICENSE && ok "LICENSE is Apache-2.0" || fail "LICENSE is not Apache-2.0"
fi

version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[[ "$(head -1 CHANGELOG.md)" == "# Changelog" ]] && ok "CHANGELOG.md title" || fail "CHANGELOG.md does not start with '# Changelog'"
grep -q 'keepachangelog.com' CHANGELOG.md && grep -q '^## \[Unreleased\]' CHANGELOG.md \
    && ok "CHANGELOG.md follows Keep a Changelog" || fail "CHANGELOG.md: no Keep a Changelog reference or [Unreleased] section"
grep -q "^## \[$version\]" CHANGELOG.md && ok "CHANGELOG.md has a section for $version" || fail "CHANGELOG.md has no section for version $version"
bad="$(grep -E '^### ' CHANGELOG.md | grep -vE '^### (Added|Changed|Deprecated|Removed|Fixed|Security)$' || true)"
[[ -z "$bad" ]] && ok "CHANGELOG.md uses the standard change types" || fail "CHANGELOG.md: unknown sections: $bad"

if ((fails)); then echo "check-artifacts: $fails failure(s)"; exit 1; fi
echo "check-artifacts: all passed"
