#!/usr/bin/env bash
# Validate the Kubernetes manifests offline (no cluster, no network once the
# tools are installed):
#
#   1. render the base and every overlay with `kubectl kustomize`;
#   2. validate each rendering against the Kubernetes JSON schemas, strictly
#      (unknown fields are errors), with PyPI kubernetes-validate, for the
#      oldest supported Kubernetes (1.31, see k8s/base/kustomization.yaml) and
#      the newest it knows;
#   3. check selectors, headless serviceNames and ConfigMap/Secret references
#      with k8s/check_selectors.py;
#   4. prove that check still fails: k8s/test_check_selectors.py plants one
#      bug at a time in the example rendering and expects each to be caught.
#
# Usage: k8s/validate.sh            (K8S_VERSIONS="1.31.0 1.37.0" to override)
set -euo pipefail

k8s_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
versions="${K8S_VERSIONS:-1.31.0 1.37.0}"
python="${PYTHON:-python3}"

command -v kubectl >/dev/null || { echo "validate: kubectl not found (it provides kustomize)" >&2; exit 1; }
if ! "$python" -c "import kubernetes_validate" 2>/dev/null; then
    echo "validate: installing kubernetes-validate from PyPI"
    "$python" -m pip install --quiet kubernetes-validate
fi
if ! "$python" -c "import yaml" 2>/dev/null; then
    echo "validate: installing PyYAML from PyPI"
    "$python" -m pip install --quiet PyYAML
fi

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

status=0
targets=(base)
for overlay in "$k8s_dir"/overlays/*/; do
    targets+=("overlays/$(basename "$overlay")")
done

for target in "${targets[@]}"; do
    out="$rendered/${target//\//_}.yaml"
    echo "== $target"
    if ! kubectl kustomize "$k8s_dir/$target" >"$out"; then
        echo "FAIL kubectl kustomize k8s/$target"
        status=1
        continue
    fi
    echo "rendered $(grep -c '^kind:' "$out") objects"
    for v in $versions; do
        if "$python" -m kubernetes_validate --strict --quiet --kubernetes-version "$v" "$out"; then
            echo "ok   schemas of Kubernetes $v (strict)"
        else
            echo "FAIL schemas of Kubernetes $v (strict)"
            status=1
        fi
    done
    # The base leaves the cluster token Secret to the overlays.
    external=()
    [[ "$target" == base ]] && external=(--external-secret paxid-cluster-token)
    if ! "$python" "$k8s_dir/check_selectors.py" "${external[@]}" "$out"; then
        status=1
    fi
done

echo "== check_selectors.py self-test (planted bugs)"
if "$python" "$k8s_dir/test_check_selectors.py" 2>"$rendered/selftest.log"; then
    echo "ok   every planted bug caught"
else
    cat "$rendered/selftest.log"
    echo "FAIL check_selectors.py missed a planted bug"
    status=1
fi

if ((status != 0)); then
    echo "validate: FAILED" >&2
else
    echo "validate: all manifests valid"
fi
exit "$status"
