#!/usr/bin/env python3
"""Check that every metric the monitoring component queries is exported.

A PrometheusRule or a dashboard that names a metric the binaries do not
export is silent forever: the alert never fires, the panel stays empty. This
script starts a small real cluster from the built binaries (3 acceptors,
2 sequencers, 1 learner on loopback ports, data in a temporary directory),
makes a few `POST /next-id` calls and one subscription, scrapes `/metrics` of
every process, and fails when a metric name used by

  - the alert and recording rules (k8s/components/monitoring/prometheusrule.yaml),
  - the Grafana dashboard (k8s/components/monitoring/dashboard.json),

is missing from every scrape. Names defined by recording rules in the same
file count as present, and histogram queries (`_bucket`, `_sum`, `_count`)
match the histogram's family. It also fails when a label matcher names a
label (`route=`, `result=`...) that no scraped sample of that metric has.

Some counters appear only once their event happened (an acceptor of another
cluster, a lost disk, a rebuild, skipped slots): a fresh cluster cannot show
them. Those are listed in EVENT_ONLY with the reason, and for them the check
is weaker: the name must occur as a string in the Rust sources under crates/
(so a renamed metric still fails). Prometheus's own `up` is not exported by
any binary and is accepted as such.

Usage:
  k8s/check_metrics.py                 check (exit 1 on a missing name)
  k8s/check_metrics.py --list          print every exported metric name
  BIN_DIR=... to use other binaries (default $CARGO_TARGET_DIR/release or
  ~/.cache/paxid-target/release). Needs PyYAML. Takes about 5-10 s.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

K8S_DIR = os.path.dirname(os.path.abspath(__file__))
MONITORING = os.path.join(K8S_DIR, "components", "monitoring")
RULES = os.path.join(MONITORING, "prometheusrule.yaml")
DASHBOARD = os.path.join(MONITORING, "dashboard.json")
HOST = "127.0.0.1"

# PromQL words that look like metric names but are not.
PROMQL_WORDS = {
    # aggregations and functions
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "group", "rate", "irate", "increase", "delta",
    "idelta", "deriv", "histogram_quantile", "absent", "absent_over_time",
    "changes", "resets", "clamp", "clamp_min", "clamp_max", "abs", "ceil",
    "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "time", "timestamp",
    "vector", "scalar", "label_replace", "label_join", "sort", "sort_desc",
    "max_over_time", "min_over_time", "avg_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "present_over_time",
    "quantile_over_time", "predict_linear", "holt_winters", "day_of_week",
    # keywords
    "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "bool", "offset", "inf", "nan", "le",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Series Prometheus makes itself for every target.
PROMETHEUS_BUILTIN = {"up"}
# Labels the PodMonitor adds to every series (not the binaries').
TARGET_LABELS = {"namespace", "pod", "component", "job", "instance", "endpoint", "container", "service"}
# Queried metrics a fresh cluster does not show, and why.
EVENT_ONLY = {
    "paxid_acceptor_rejections_total": "counted when an acceptor refuses a request (a ballot below its promise, "
    "a blank acceptor asked to vote); a quiet cluster may have none",
    "paxid_sequencer_acceptor_identity_changes_total": "counted when an acceptor URL answers under a new identity (lost disk)",
    "paxid_sequencer_rebuilds_total": "counted when a sequencer rebuilds a blank acceptor",
    "paxid_sequencer_wrong_cluster_total": "counted when an acceptor of another --cluster-id answers",
    "paxid_learner_skipped_slots_total": "set when the learner jumps over compacted slots (its start value, "
    "restored from the store, is recorded before the metrics recorder is installed and does not show)",
    "paxid_learner_conflicts_total": "counted when a report contradicts a learned value (its zero start value "
    "is recorded before the metrics recorder is installed and does not show)",
}
REPO_DIR = os.path.dirname(K8S_DIR)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the exported metric names and exit")
    parser.add_argument(
        "--plant",
        action="append",
        default=[],
        metavar="EXPR",
        help="self-test: a PromQL expression with a wrong metric or label name that the check must reject "
        "(checked against the same scrape); repeatable",
    )
    args = parser.parse_args()

    bin_dir = os.environ.get("BIN_DIR") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/paxid-target"), "release"
    )
    for binary in ("paxid-acceptor", "paxid-sequencer", "paxid-learner"):
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            print(f"check_metrics: {bin_dir}/{binary} is missing; run 'make build'", file=sys.stderr)
            return 1

    started = time.monotonic()
    exported = scrape_cluster(bin_dir)
    if args.list:
        for name in sorted(exported):
            print(f"{name} {sorted(exported[name])}")
        return 0

    context = (exported, recording_rule_names(), rust_sources())
    exprs = list(rule_exprs()) + list(dashboard_exprs())
    failures, counts, notes = evaluate(exprs, *context)
    for note in notes:
        print(f"note {note}")
    for expr in args.plant:
        planted_failures, _, _ = evaluate([("planted bug", expr)], *context)
        if planted_failures:
            print(f"ok   planted bug caught: {expr}")
        else:
            failures.append(f"the planted bug {expr!r} was not caught")
    for failure in failures:
        print(f"FAIL {failure}")
    print(
        f"check_metrics: {counts['queried']} metric names queried by rules and dashboard: {counts['scraped']} "
        f"scraped from the running cluster, {counts['event_only']} event-only (found in the sources), "
        f"{counts['builtin']} Prometheus built-in; {counts['labels']} label matchers checked; "
        f"{len(exported)} names exported; {len(failures)} failure(s) ({time.monotonic() - started:.1f} s)"
    )
    return 1 if failures else 0


def evaluate(exprs, exported, recorded, sources):
    """Failures, counts and notes for [(place, PromQL expression)]."""
    queried = {}
    for where, expr in exprs:
        for name in metric_names(expr):
            queried.setdefault(name, set()).add(where)
    failures, notes = [], []
    counts = {"queried": len(queried), "scraped": 0, "event_only": 0, "builtin": 0, "labels": 0}
    for name, where in sorted(queried.items()):
        places = ", ".join(sorted(where))
        family = strip_histogram_suffix(name)
        if name in recorded:
            continue
        if name in PROMETHEUS_BUILTIN:
            counts["builtin"] += 1
        elif exported_has(exported, name):
            counts["scraped"] += 1
        elif family in EVENT_ONLY:
            if f'"{family}"' in sources:
                counts["event_only"] += 1
                notes.append(f"{name}: not in a fresh cluster's scrape, {EVENT_ONLY[family]}; found in crates/")
            else:
                failures.append(f"metric {name} (used in {places}) is listed as event-only but no crate names it")
        else:
            failures.append(f"metric {name} (used in {places}) is exported by no process")
    for name, label, where in expr_labels(exprs):
        if name in PROMETHEUS_BUILTIN or strip_histogram_suffix(name) in EVENT_ONLY or label in TARGET_LABELS:
            continue
        labels = exported.get(name)
        if labels is None:
            labels = exported.get(strip_histogram_suffix(name))
        if labels is None:
            continue  # reported above as a missing metric
        counts["labels"] += 1
        if label not in labels:
            failures.append(
                f"metric {name} has no label {label!r} (used in {where}); its labels: {sorted(labels) or 'none'}"
            )
    return failures, counts, notes


def strip_histogram_suffix(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def rust_sources():
    text = []
    for root, _, files in os.walk(os.path.join(REPO_DIR, "crates")):
        for f in files:
            if f.endswith(".rs") and f != "tests.rs":
                with open(os.path.join(root, f), encoding="utf-8", errors="replace") as src:
                    text.append(src.read())
    return "\n".join(text)


def exported_has(exported, name):
    return name in exported or strip_histogram_suffix(name) in exported


# ---------------------------------------------------------------- queries


def load_rule_groups():
    with open(RULES, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return doc["spec"]["groups"]


def rule_exprs():
    for group in load_rule_groups():
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield f"rule {name}", str(rule["expr"])


def recording_rule_names():
    return {rule["record"] for group in load_rule_groups() for rule in group["rules"] if "record" in rule}


def dashboard_exprs():
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)

    def walk(panels):
        for panel in panels:
            yield from walk(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    yield f"panel {panel.get('title')!r}", target["expr"]

    yield from walk(dashboard.get("panels") or [])
    for var in (dashboard.get("templating") or {}).get("list") or []:
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query:
            # label_values(metric, label) names a metric as its first argument.
            m = re.match(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,", query)
            if m:
                yield f"variable {var.get('name')!r}", m.group(1)


def expr_labels(exprs):
    """(metric, label name, place) for every label matcher `metric{label=...}`."""
    for where, expr in exprs:
        for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
            for label in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)):
                yield m.group(1), label, where


def metric_names(expr):
    """Metric names in a PromQL expression (a lexer good enough for our rules)."""
    # Drop string literals, label matchers and grouping label lists, durations.
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", " ", expr)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = m.group(0)
        rest = expr[m.end():].lstrip()
        if word.lower() in PROMQL_WORDS:
            continue
        if rest.startswith("("):  # a function call we do not know: not a metric
            continue
        prev = expr[: m.start()].rstrip()
        if prev and (prev[-1].isdigit() or prev[-1] == "."):  # 1e3, 0.5
            continue
        names.add(word)
    return names


# ---------------------------------------------------------------- cluster


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http(method, url, body=None, timeout=2.0):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def scrape_cluster(bin_dir):
    tmp = tempfile.mkdtemp(prefix="paxid-metrics-")
    procs = []
    logs = []
    try:
        a_ports = free_ports(3)
        s_ports = free_ports(2)
        (l_port,) = free_ports(1)
        acceptors = ",".join(f"http://{HOST}:{p}" for p in a_ports)
        learner_url = f"http://{HOST}:{l_port}"

        def launch(name, argv):
            log = open(os.path.join(tmp, f"{name}.log"), "wb")
            logs.append((name, log.name))
            procs.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )

        for i, port in enumerate(a_ports):
            launch(f"acceptor-{i}", [f"{bin_dir}/paxid-acceptor", "--listen", f"{HOST}:{port}",
                                     "--data-dir", os.path.join(tmp, f"acceptor-{i}")])
        launch("learner", [f"{bin_dir}/paxid-learner", "--listen", f"{HOST}:{l_port}",
                           "--data-dir", os.path.join(tmp, "learner"), "--acceptors", acceptors,
                           "--allow-private-webhooks"])
        for i, port in enumerate(s_ports):
            launch(f"sequencer-{i + 1}", [f"{bin_dir}/paxid-sequencer", "--listen", f"{HOST}:{port}",
                                          "--node-id", str(i + 1), "--acceptors", acceptors,
                                          "--advertise-url", f"http://{HOST}:{port}",
                                          "--learners", learner_url])
        seq_urls = [f"http://{HOST}:{p}" for p in s_ports]

        # A subscription to a receiver that is not there: delivery fails and
        # retries, which exercises the delivery metrics.
        deadline = time.monotonic() + 20
        while http("GET", f"{learner_url}/livez")[0] != 200:
            check_alive(procs, logs)
            if time.monotonic() > deadline:
                raise SystemExit("check_metrics: the learner did not start")
            time.sleep(0.1)
        (hook_port,) = free_ports(1)
        http("POST", f"{learner_url}/v1/subscriptions", {"url": f"http://{HOST}:{hook_port}/hook"})

        ok = 0
        deadline = time.monotonic() + 20
        while ok < 10:
            check_alive(procs, logs)
            if time.monotonic() > deadline:
                raise SystemExit(f"check_metrics: only {ok} of 10 POST /next-id answered 200 in 20 s")
            status, _ = http("POST", f"{seq_urls[ok % 2]}/next-id", {"count": 3, "sequence": "orders"})
            if status == 200:
                ok += 1
            else:
                time.sleep(0.1)
        # One bad request, so error series exist too.
        http("POST", f"{seq_urls[0]}/next-id", {"count": 0})
        # Let the learner pull, the leader heartbeat and delivery retry once.
        time.sleep(1.5)

        names = {}
        for port in a_ports + s_ports + [l_port]:
            status, text = http("GET", f"http://{HOST}:{port}/metrics")
            if status != 200:
                raise SystemExit(f"check_metrics: GET /metrics on port {port} answered {status}")
            for name, labels in exported_names(text).items():
                names.setdefault(name, set()).update(labels)
        return names
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def check_alive(procs, logs):
    for proc, (name, log) in zip(procs, logs):
        if proc.poll() is not None:
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-2000:]
            raise SystemExit(f"check_metrics: {name} exited with {proc.returncode}:\n{tail}")


def exported_names(text):
    """Metric family and sample names in Prometheus text format -> label names."""
    names = {}
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 3:
                names.setdefault(parts[2], set())
        elif line and not line.startswith("#"):
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?", line)
            if m:
                labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', m.group(3) or ""))
                names.setdefault(m.group(1), set()).update(labels)
                family = strip_histogram_suffix(m.group(1))
                if family != m.group(1):
                    families.setdefault(family, set()).update(labels - {"le"})
    for family, labels in families.items():
        if family in names:
            names[family].update(labels)
    return names


if __name__ == "__main__":
    sys.exit(main())
