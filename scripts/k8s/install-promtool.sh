#!/usr/bin/env bash
# Makes promtool (from Debian's `prometheus` package) available for
# k8s/validate.sh, without installing the package: `apt-get install
# prometheus` would also create a system user and start a Prometheus server
# on :9090 (invoke-rc.d/systemd), which nothing here wants. Instead the .deb
# is downloaded and unpacked (`dpkg -x`), and only its static promtool binary
# is kept, in ~/.cache/paxid-tools/bin (PAXID_TOOLS_DIR to change).
#
# Prints the path of promtool on stdout. Safe to run again: a promtool on
# PATH or already unpacked is used as it is.
set -euo pipefail

tools="${PAXID_TOOLS_DIR:-$HOME/.cache/paxid-tools}"
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
if [ -x "$tools/bin/promtool" ]; then
  echo "$tools/bin/promtool"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || {
  echo "install-promtool: no promtool and no apt-get; install Prometheus's promtool and put it on PATH" >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-promtool: downloading Debian's prometheus package for promtool" >&2
if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
  # The package lists may be missing on a fresh machine.
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  (cd "$work" && apt-get download prometheus >/dev/null)
fi
dpkg -x "$work"/prometheus_*.deb "$work/root"
mkdir -p "$tools/bin"
install -m 0755 "$work/root/usr/bin/promtool" "$tools/bin/promtool"
"$tools/bin/promtool" --version >&2
echo "$tools/bin/promtool"
