#!/usr/bin/env bash
# Build the paxid container image from already-built release binaries, without
# pulling anything (the Docker engine here has no registry access and no base
# images). Usage:
#
#   deploy/build-image.sh [BIN_DIR]
#
# BIN_DIR holds paxid-acceptor, paxid-sequencer, paxid-learner and paxid; it
# defaults to $BIN_DIR, else $CARGO_TARGET_DIR/release, else
# ~/.cache/paxid-target/release. Environment:
#
#   IMAGE=paxid:latest   tag to build
#   STRIP_DEBUG=1        strip debug sections (line tables) from the copies
#                        put in the image; 0 keeps them (bigger image, line
#                        numbers in backtraces). The originals are untouched.
#   KEEP_ROOTFS=DIR      also leave the assembled root file system in DIR
#
# The image is FROM scratch: the binaries, every shared library `ldd` lists
# for them plus the dynamic loader, glibc's NSS modules, CA certificates,
# /etc/passwd and /etc/group with the non-root user paxid (65532),
# /etc/nsswitch.conf, and an empty /data owned by paxid.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin_dir="${1:-${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/paxid-target}/release}}"
image="${IMAGE:-paxid:latest}"
strip_debug="${STRIP_DEBUG:-1}"
binaries=(paxid-acceptor paxid-sequencer paxid-learner paxid)
uid=65532

die() { echo "build-image: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found"
command -v ldd >/dev/null || die "ldd not found"
for b in "${binaries[@]}"; do
    [[ -x "$bin_dir/$b" ]] || die "missing executable $bin_dir/$b (run 'cargo build --release' first, or pass BIN_DIR)"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/data"

# Binaries.
for b in "${binaries[@]}"; do
    install -m 0755 "$bin_dir/$b" "$root/usr/local/bin/$b"
    if [[ "$strip_debug" == 1 ]] && command -v strip >/dev/null; then
        strip --strip-debug "$root/usr/local/bin/$b"
    fi
done

# Shared libraries, each at the path the host's loader resolved it to, and
# the loader itself at the path written in the binaries' PT_INTERP. ldd on a
# static binary says "not a dynamic executable"; that is fine, nothing to copy.
copy_lib() {
    local src="$1"
    [[ -e "$src" ]] || die "library $src not found"
    mkdir -p "$root$(dirname "$src")"
    cp -L "$src" "$root$src"
}
libc_dir=""
for b in "${binaries[@]}"; do
    if ! out="$(ldd "$bin_dir/$b" 2>&1)"; then
        grep -q "not a dynamic executable" <<<"$out" && continue
        die "ldd $b failed: $out"
    fi
    if grep -q "not found" <<<"$out"; then
        die "$b links a library that is missing on this host:"$'\n'"$(grep "not found" <<<"$out")"
    fi
    while read -r lib; do
        copy_lib "$lib"
        [[ "$(basename "$lib")" == libc.so.* ]] && libc_dir="$(dirname "$lib")"
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
done

# glibc loads NSS modules with dlopen, so ldd does not list them. Since glibc
# 2.34 "files" and "dns" are built into libc.so.6 and these files are stubs,
# but copying them keeps the image correct on hosts with an older glibc.
if [[ -n "$libc_dir" ]]; then
    for m in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
        [[ -e "$libc_dir/$m" ]] && copy_lib "$libc_dir/$m"
    done
fi

# CA certificates, for webhooks to https endpoints.
ca=/etc/ssl/certs/ca-certificates.crt
[[ -r "$ca" ]] || die "$ca not found (apt-get install ca-certificates)"
install -m 0644 "$ca" "$root$ca"

# Users, and the name-service configuration that makes glibc read /etc/hosts
# (Docker and Kubernetes mount one) and then ask the DNS server in
# /etc/resolv.conf, which is how service names such as acceptor-0.acceptor-hs
# resolve.
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
paxid:x:$uid:$uid:paxid:/data:/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
paxid:x:$uid:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

# One archive, owned by root except /data, which belongs to paxid; ADD keeps
# these owners (COPY would not). Built with --owner so no root is needed here.
tar_common=(--numeric-owner --sort=name --mtime=@0 -C "$root")
tar "${tar_common[@]}" --owner=0 --group=0 --exclude=./data -cf "$work/rootfs.tar" .
tar "${tar_common[@]}" --owner="$uid" --group="$uid" -rf "$work/rootfs.tar" ./data
cp "$here/Dockerfile" "$work/Dockerfile"

if [[ -n "${KEEP_ROOTFS:-}" ]]; then
    mkdir -p "$KEEP_ROOTFS"
    cp -a "$root/." "$KEEP_ROOTFS/"
fi

echo "build-image: building $image from $bin_dir"
# The legacy builder: this engine (20.10) has no BuildKit/buildx component,
# and FROM scratch needs nothing BuildKit adds.
DOCKER_BUILDKIT=0 docker build --quiet --tag "$image" "$work" >/dev/null

size_bytes="$(docker image inspect --format '{{.Size}}' "$image")"
echo "build-image: $image contains:"
tar -tvf "$work/rootfs.tar" | awk '$1 !~ /^d/ { printf "  %10d  %s\n", $3, $6 }'
echo "build-image: $image size: $size_bytes bytes ($(numfmt --to=iec --suffix=B "$size_bytes"))"
