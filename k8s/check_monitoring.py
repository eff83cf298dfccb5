#!/usr/bin/env python3
"""Validate the monitoring component offline.

The Kubernetes JSON schemas that kubernetes-validate ships know no custom
resources, so the Prometheus Operator's PodMonitor and PrometheusRule are
checked here instead:

  split RENDERED CORE CRDS
      write the objects of a rendered overlay to CORE (built-in kinds, for
      kubernetes-validate) and CRDS (monitoring.coreos.com kinds).
  crds CRDS RENDERED
      structural check of the custom resources: apiVersion and kind, the
      fields the operator needs (PodMonitor selector and endpoint port,
      PrometheusRule groups with alert/record and expr), that the PodMonitor
      selects a paxid pod template of RENDERED whose container has the named
      port, and that the dashboard ConfigMap holds valid dashboard JSON.
  rules PROMTOOL
      the rule content: `promtool check rules` on the PrometheusRule's
      groups, `promtool test rules` on tests/rules.test.yaml, and that every
      alert has a test case in which it fires and one in which it does not,
      a severity, a summary, a description and a runbook section that exists
      in docs/kubernetes.md.

Exit status 0 when every check passes. Needs PyYAML.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

K8S_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(K8S_DIR)
MONITORING = os.path.join(K8S_DIR, "components", "monitoring")
RULES = os.path.join(MONITORING, "prometheusrule.yaml")
TESTS = os.path.join(MONITORING, "tests", "rules.test.yaml")
DASHBOARD = os.path.join(MONITORING, "dashboard.json")
DOCS = os.path.join(REPO_DIR, "docs", "kubernetes.md")
CRD_GROUP = "monitoring.coreos.com/"
SEVERITIES = {"critical", "warning", "info"}


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def split(rendered, core_out, crds_out):
    docs = load_all(rendered)
    core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CRD_GROUP)]
    crds = [d for d in docs if str(d.get("apiVersion", "")).startswith(CRD_GROUP)]
    with open(core_out, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(crds_out, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(crds, f, sort_keys=False)
    print(f"split: {len(core)} built-in objects, {len(crds)} {CRD_GROUP}* custom resources")
    return 0


class Failures:
    def __init__(self):
        self.items = []
        self.passes = 0

    def check(self, ok, message):
        if ok:
            self.passes += 1
        else:
            self.items.append(message)
        return ok


def selector_matches(selector, labels):
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check_crds(crds_path, rendered_path):
    f = Failures()
    crds = load_all(crds_path)
    rendered = load_all(rendered_path)
    templates = [
        (d["spec"]["template"]["metadata"].get("labels") or {}, d["spec"]["template"]["spec"])
        for d in rendered
        if d.get("kind") in ("StatefulSet", "Deployment", "DaemonSet")
    ]
    kinds = {d.get("kind") for d in crds}
    f.check({"PodMonitor", "PrometheusRule"} <= kinds, f"expected a PodMonitor and a PrometheusRule, got {sorted(kinds)}")
    for d in crds:
        ident = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        f.check(d.get("apiVersion") == "monitoring.coreos.com/v1", f"{ident}: apiVersion {d.get('apiVersion')!r}")
        meta = d.get("metadata") or {}
        f.check(bool(meta.get("name")) and bool(meta.get("namespace")), f"{ident}: metadata.name/namespace missing")
        spec = d.get("spec") or {}
        if d.get("kind") == "PodMonitor":
            allowed = {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels",
                       "sampleLimit", "targetLimit", "attachMetadata"}
            f.check(set(spec) <= allowed, f"{ident}: unknown spec fields {sorted(set(spec) - allowed)}")
            selector = spec.get("selector") or {}
            matched = [spec_ for labels, spec_ in templates if selector_matches(selector, labels)]
            f.check(len(matched) >= 3, f"{ident}: selector {selector} matches {len(matched)} pod templates, want all 3")
            endpoints = spec.get("podMetricsEndpoints") or []
            f.check(bool(endpoints), f"{ident}: no podMetricsEndpoints")
            for ep in endpoints:
                allowed_ep = {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings",
                              "honorLabels", "scheme", "bearerTokenSecret", "authorization"}
                f.check(set(ep) <= allowed_ep, f"{ident}: unknown endpoint fields {sorted(set(ep) - allowed_ep)}")
                f.check(ep.get("path") == "/metrics", f"{ident}: endpoint path {ep.get('path')!r}, want /metrics")
                for pod in matched:
                    ports = {p.get("name") for c in pod.get("containers") or [] for p in c.get("ports") or []}
                    f.check(ep.get("port") in ports, f"{ident}: port {ep.get('port')!r} not among container ports {ports}")
                for r in ep.get("relabelings") or []:
                    f.check(bool(r.get("targetLabel")) or r.get("action") in ("drop", "keep", "labeldrop", "labelkeep"),
                            f"{ident}: relabeling without targetLabel: {r}")
                    for src in r.get("sourceLabels") or []:
                        m = re.match(r"__meta_kubernetes_pod_label_(.+)$", src)
                        if m:
                            present = any(
                                re.sub(r"[^A-Za-z0-9_]", "_", k) == m.group(1) for labels, _ in templates for k in labels
                            )
                            f.check(present, f"{ident}: relabeling reads pod label {m.group(1)!r}, which no pod has")
        elif d.get("kind") == "PrometheusRule":
            f.check(set(spec) == {"groups"}, f"{ident}: spec fields {sorted(spec)}, want only groups")
            for g in spec.get("groups") or []:
                f.check(bool(g.get("name")) and bool(g.get("rules")), f"{ident}: group without name or rules")
                for r in g.get("rules") or []:
                    f.check(("alert" in r) != ("record" in r), f"{ident}: rule needs exactly one of alert/record: {r}")
                    f.check(isinstance(r.get("expr"), str) and r["expr"].strip(), f"{ident}: rule without expr")
                    allowed_rule = {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
                    f.check(set(r) <= allowed_rule, f"{ident}: unknown rule fields {sorted(set(r) - allowed_rule)}")
    dashboards = [
        d for d in rendered
        if d.get("kind") == "ConfigMap" and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"
    ]
    if f.check(len(dashboards) == 1, f"want one ConfigMap labelled grafana_dashboard=1, got {len(dashboards)}"):
        for key, text in (dashboards[0].get("data") or {}).items():
            try:
                dash = json.loads(text)
            except ValueError as e:
                f.check(False, f"dashboard {key}: not JSON: {e}")
                continue
            f.check(bool(dash.get("uid")) and bool(dash.get("title")), f"dashboard {key}: uid/title missing")
            panels = [p for p in dash.get("panels") or [] if p.get("type") != "row"]
            f.check(bool(panels), f"dashboard {key}: no panels")
            for p in panels:
                f.check(bool(p.get("targets")) and all(t.get("expr") for t in p["targets"]),
                        f"dashboard {key}: panel {p.get('title')!r} has no query")
                f.check(set(p.get("gridPos") or {}) == {"x", "y", "w", "h"}, f"dashboard {key}: panel {p.get('title')!r} gridPos")
            ids = [p.get("id") for p in dash.get("panels") or []]
            f.check(len(ids) == len(set(ids)), f"dashboard {key}: duplicate panel ids")
    return report("crds", f)


def check_rules(promtool):
    f = Failures()
    (rule_obj,) = load_all(RULES)
    groups = rule_obj["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    with open(DOCS, encoding="utf-8") as d:
        anchors = {anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", d.read(), flags=re.M)}
    for a in alerts:
        name = a["alert"]
        f.check((a.get("labels") or {}).get("severity") in SEVERITIES, f"{name}: severity must be one of {sorted(SEVERITIES)}")
        ann = a.get("annotations") or {}
        for key in ("summary", "description", "runbook"):
            f.check(bool(ann.get(key)), f"{name}: annotation {key} missing")
        runbook = ann.get("runbook", "")
        f.check(runbook.startswith("docs/kubernetes.md#") and runbook.split("#", 1)[1] in anchors,
                f"{name}: runbook {runbook!r} names no section of docs/kubernetes.md")
    names = [a["alert"] for a in alerts]
    f.check(len(names) == len(set(names)), "duplicate alert names")

    with open(TESTS, encoding="utf-8") as t:
        tests = yaml.safe_load(t)
    fires, quiet = set(), set()
    for case in tests.get("tests") or []:
        for at in case.get("alert_rule_test") or []:
            (fires if at.get("exp_alerts") else quiet).add(at["alertname"])
    for name in names:
        f.check(name in fires, f"{name}: no test case in which it fires (tests/rules.test.yaml)")
        f.check(name in quiet, f"{name}: no test case in which it stays quiet (tests/rules.test.yaml)")
    for name in (fires | quiet) - set(names):
        f.check(False, f"tests/rules.test.yaml tests {name}, which is no alert")

    work = tempfile.mkdtemp(prefix="paxid-rules-")
    try:
        full = os.path.join(work, "paxid-rules-full.yaml")
        with open(full, "w", encoding="utf-8") as out:
            yaml.safe_dump({"groups": groups}, out, sort_keys=False)
        result = subprocess.run([promtool, "check", "rules", full], capture_output=True, text=True)
        f.check(result.returncode == 0, f"promtool check rules:\n{result.stdout}{result.stderr}")
        if result.returncode == 0:
            print("ok   promtool check rules: " + result.stdout.strip().splitlines()[-1].strip())
        # The unit tests compare annotations exactly: keep only the summary.
        trimmed = json.loads(json.dumps(groups))
        for g in trimmed:
            for r in g["rules"]:
                if "annotations" in r:
                    r["annotations"] = {"summary": r["annotations"]["summary"]}
        with open(os.path.join(work, "paxid-rules.yaml"), "w", encoding="utf-8") as out:
            yaml.safe_dump({"groups": trimmed}, out, sort_keys=False)
        shutil.copy(TESTS, os.path.join(work, "rules.test.yaml"))
        result = subprocess.run([promtool, "test", "rules", "rules.test.yaml"], cwd=work, capture_output=True, text=True)
        cases = len(tests.get("tests") or [])
        if f.check(result.returncode == 0, f"promtool test rules:\n{result.stdout}{result.stderr}"):
            print(f"ok   promtool test rules: {cases} test groups, {len(names)} alerts, each firing and quiet")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report("rules", f)


def anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def report(what, f):
    for item in f.items:
        print(f"FAIL {item}")
    print(f"check_monitoring {what}: {f.passes} checks passed, {len(f.items)} failed")
    return 1 if f.items else 0


def main(argv):
    if len(argv) == 4 and argv[0] == "split":
        return split(*argv[1:])
    if len(argv) == 3 and argv[0] == "crds":
        return check_crds(*argv[1:])
    if len(argv) == 2 and argv[0] == "rules":
        return check_rules(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
