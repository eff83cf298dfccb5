#!/usr/bin/env bash
# Installs what building and testing paxid needs, when it is missing.
# Safe to run again: every step checks first. Needs root (or sudo) for apt.
set -euo pipefail

need_apt=()
# RocksDB's bindings are generated with bindgen, which loads libclang
# (libclang.so or libclang-N.so; libclang-cpp, which some machines carry
# without it, is a different library and does not do).
if ! compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null \
  && ! compgen -G '/usr/lib/*-linux-gnu/libclang-[0-9]*.so*' >/dev/null; then
  need_apt+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# The acceptor's fsync-order test traces the real binary's system calls.
command -v strace >/dev/null 2>&1 || need_apt+=(strace)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi

# Independent checks used by the tests: a Standard Webhooks verifier and the
# Kubernetes schemas for offline manifest validation.
pip_missing=()
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('standardwebhooks') != '1.1.0')" 2>/dev/null || pip_missing+=("standardwebhooks==1.1.0")
command -v kubernetes-validate >/dev/null 2>&1 || pip_missing+=(kubernetes-validate)
python3 -c "import yaml" 2>/dev/null || pip_missing+=(PyYAML)
# Property-based tests of the public APIs from their OpenAPI documents.
# Pinned: its checks and CLI flags (tests/schemathesis/run.py) change between releases.
python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '4.32.5')" 2>/dev/null \
  || pip_missing+=("schemathesis==4.32.5")
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "setup: pip installing ${pip_missing[*]}"
  python3 -m pip install -q "${pip_missing[@]}" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "${pip_missing[@]}"
fi
# promtool (Debian's prometheus package, unpacked only: installing it would
# start a Prometheus server) checks the alert rules in k8s/validate.sh.
"$(dirname "${BASH_SOURCE[0]}")/k8s/install-promtool.sh" >/dev/null

echo "setup: ok"
