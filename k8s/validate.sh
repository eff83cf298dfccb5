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
#      bug at a time in the example rendering and expects each to be caught;
#   5. check probes against the code and each overlay against its promise
#      (dev: fits one node; production: one acceptor per node, spread over
#      zones) with k8s/check_manifests.py;
#   6. the monitoring component (k8s/check_monitoring.py): custom resources
#      (PodMonitor, PrometheusRule) are not in the Kubernetes schemas, so they
#      are split out of each rendering before kubernetes-validate and checked
#      structurally instead; the rules with `promtool check rules` and
#      `promtool test rules` (a unit test for every alert);
#   7. start a small real cluster from the release binaries and check that
#      every metric the rules and the dashboard query is exported
#      (k8s/check_metrics.py, about 5 s; PAXID_SKIP_METRICS=1 skips it where
#      no binaries are built);
#   8. deploy/check-artifacts.sh: the Makefile's compose targets,
#      deploy/Dockerfile.registry, LICENSE and CHANGELOG.md.
#
# Renders: the base, every overlays/*, and tests/overlays/* (overlays with
# every optional component, so each component is rendered and validated).
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

promtool="$("$k8s_dir/../scripts/k8s/install-promtool.sh")" || {
    echo "validate: promtool is missing (scripts/k8s/install-promtool.sh failed)" >&2; exit 1; }

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

status=0
targets=(base)
for overlay in "$k8s_dir"/overlays/*/ "$k8s_dir"/tests/overlays/*/; do
    overlay="${overlay%/}"
    targets+=("${overlay#"$k8s_dir"/}")
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
    # Custom resources (monitoring.coreos.com) are not in the schemas.
    core="$out.core" crds="$out.crds"
    "$python" "$k8s_dir/check_monitoring.py" split "$out" "$core" "$crds"
    if [[ -s "$crds" ]] && grep -q '^kind:' "$crds"; then
        if ! "$python" "$k8s_dir/check_monitoring.py" crds "$crds" "$out"; then
            status=1
        fi
    fi
    for v in $versions; do
        if "$python" -m kubernetes_validate --strict --quiet --kubernetes-version "$v" "$core"; then
            echo "ok   schemas of Kubernetes $v (strict)"
        else
            echo "FAIL schemas of Kubernetes $v (strict)"
            status=1
        fi
    done
    # The base and production leave the cluster token Secret to the
    # installation (created out of band).
    external=()
    case "$target" in
        base | overlays/production | tests/overlays/production*) external=(--external-secret paxid-cluster-token) ;;
    esac
    if ! "$python" "$k8s_dir/check_selectors.py" "${external[@]}" "$out"; then
        status=1
    fi
    profile=()
    case "$target" in
        overlays/dev | tests/overlays/dev*) profile=(--profile dev) ;;
        overlays/production | tests/overlays/production*) profile=(--profile production) ;;
    esac
    if ! "$python" "$k8s_dir/check_manifests.py" "${profile[@]}" "$out"; then
        status=1
    fi
done

echo "== alert rules (promtool $("$promtool" --version 2>&1 | head -1 | awk '{print $3}'))"
if ! "$python" "$k8s_dir/check_monitoring.py" rules "$promtool"; then
    status=1
fi

echo "== metrics queried by the rules and the dashboard, against a running cluster"
if [[ "${PAXID_SKIP_METRICS:-0}" == 1 ]]; then
    echo "skip PAXID_SKIP_METRICS=1"
elif ! "$python" "$k8s_dir/check_metrics.py" \
    --plant 'paxid_sequencer_is_leadr' \
    --plant 'sum(rate(paxid_http_requests_total{rout="/next-id"}[5m]))' \
    --plant 'paxid_learner_delivery_attempts_total{reason="gone"}'; then
    status=1
fi

echo "== deploy artifacts (compose targets, Dockerfile.registry, LICENSE, CHANGELOG)"
if ! "$k8s_dir/../deploy/check-artifacts.sh"; then
    status=1
fi

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
