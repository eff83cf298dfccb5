#!/usr/bin/env python3
"""Check rendered manifests against the code and against their overlay's promise.

  check_manifests.py [--profile dev|production] RENDERED.yaml

Always:
  - every readinessProbe on /readyz has timeoutSeconds above the services'
    own bound on /readyz (READY_CHECK_TIMEOUT_MS in
    crates/service/src/health.rs), so a slow check arrives as a 503 with its
    reason instead of a probe timeout; every liveness/startup probe timeout is
    at least as long;
  - the sequencer NetworkPolicy admits namespaces labelled
    paxid.io/client=true (the documented way in for clients elsewhere).
--profile dev (one-node clusters):
  - no workload requires pod anti-affinity or a DoNotSchedule spread (every
    pod must fit one node), and every container requests at most 100m CPU
    and 128Mi memory.
--profile production:
  - acceptors and sequencers require hostname anti-affinity against their
    own pods, and spread over topology.kubernetes.io/zone (acceptors with
    DoNotSchedule).

Exit status 0 when every check passes. Needs PyYAML.
"""

import argparse
import os
import re
import sys

import yaml

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH_RS = os.path.join(REPO_DIR, "crates", "service", "src", "health.rs")


def ready_timeout_ms():
    with open(HEALTH_RS, encoding="utf-8") as f:
        m = re.search(r"READY_CHECK_TIMEOUT_MS\s*:\s*u64\s*=\s*([0-9_]+)", f.read())
    if not m:
        raise SystemExit(f"check_manifests: READY_CHECK_TIMEOUT_MS not found in {HEALTH_RS}")
    return int(m.group(1).replace("_", ""))


def cpu_millis(value):
    value = str(value)
    return int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)


def mem_bytes(value):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for unit, factor in units.items():
        if str(value).endswith(unit):
            return int(float(str(value)[: -len(unit)]) * factor)
    return int(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["dev", "production"])
    parser.add_argument("file")
    args = parser.parse_args()
    with open(args.file, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]

    failures, passes = [], 0

    def check(ok, message):
        nonlocal passes
        if ok:
            passes += 1
        else:
            failures.append(message)

    bound_s = ready_timeout_ms() / 1000
    workloads = [d for d in docs if d.get("kind") in ("StatefulSet", "Deployment", "DaemonSet")]
    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        pod = w["spec"]["template"]["spec"]
        component = (w["spec"]["template"]["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        for c in pod.get("containers") or []:
            ready = c.get("readinessProbe")
            check(ready is not None, f"{name}/{c['name']}: no readinessProbe")
            if ready:
                t = ready.get("timeoutSeconds", 1)
                check(t > bound_s, f"{name}/{c['name']}: readinessProbe timeoutSeconds {t} is not above the "
                                   f"services' /readyz bound of {bound_s:g} s (READY_CHECK_TIMEOUT_MS)")
                for kind in ("livenessProbe", "startupProbe"):
                    other = c.get(kind)
                    if other:
                        check(other.get("timeoutSeconds", 1) >= t,
                              f"{name}/{c['name']}: {kind} timeoutSeconds below the readiness probe's")
            if args.profile == "dev":
                req = (c.get("resources") or {}).get("requests") or {}
                check(cpu_millis(req.get("cpu", "0")) <= 100, f"{name}: dev requests cpu {req.get('cpu')} > 100m")
                check(mem_bytes(req.get("memory", "0")) <= 128 * 2**20,
                      f"{name}: dev requests memory {req.get('memory')} > 128Mi")
        anti = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
        required = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        spreads = pod.get("topologySpreadConstraints") or []
        if args.profile == "dev":
            check(not required, f"{name}: dev overlay requires pod anti-affinity; a one-node cluster cannot place it")
            check(all(s.get("whenUnsatisfiable") != "DoNotSchedule" for s in spreads),
                  f"{name}: dev overlay has a DoNotSchedule spread constraint")
        if args.profile == "production" and component in ("acceptor", "sequencer"):
            own = [
                t for t in required
                if t.get("topologyKey") == "kubernetes.io/hostname"
                and (t.get("labelSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component") == component
            ]
            check(bool(own), f"{name}: production needs required hostname anti-affinity against its own pods")
            zone = [s for s in spreads if s.get("topologyKey") == "topology.kubernetes.io/zone"
                    and (s.get("labelSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component") == component]
            check(bool(zone), f"{name}: production needs a zone topologySpreadConstraint")
            if component == "acceptor" and zone:
                check(zone[0].get("whenUnsatisfiable") == "DoNotSchedule",
                      f"{name}: acceptors must spread over zones with DoNotSchedule")
    check(len(workloads) == 3, f"want 3 workloads, got {len(workloads)}")

    seq_policies = [d for d in docs if d.get("kind") == "NetworkPolicy" and d["metadata"]["name"] == "sequencer"]
    admits_clients = any(
        (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("paxid.io/client") == "true"
        for p in seq_policies for rule in p["spec"].get("ingress") or [] for peer in rule.get("from") or []
    )
    check(admits_clients, "NetworkPolicy/sequencer does not admit namespaces labelled paxid.io/client=true")

    for failure in failures:
        print(f"FAIL {failure}")
    print(f"check_manifests{' --profile ' + args.profile if args.profile else ''}: "
          f"{passes} checks passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
