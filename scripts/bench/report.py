#!/usr/bin/env python3
"""Writes the "## Side by side" section of docs/benchmarks.md from the JSON
results of `paxid bench --json` that scripts/bench/run.sh collected.

Other sections of the file (for example "## Acceptor") are kept as they are;
the "## Side by side" section is replaced, or appended when absent.

Usage: report.py RESULTS_DIR OUTPUT_MD COMMAND
  RESULTS_DIR holds <system>-c<clients>-n<count>.json (one bench result
  each), setup.txt (one line per system describing its setup) and
  notes.txt (one line per remark, such as a system that failed to start).
"""

import json
import os
import platform
import re
import subprocess
import sys
import time

SECTION = "## Side by side"
SYSTEMS = ["paxid", "ceiling", "etcd"]


def main():
    results_dir, output, command = sys.argv[1], sys.argv[2], sys.argv[3]
    results = load_results(results_dir)
    section = render(results, results_dir, command)
    write_section(output, section)
    print(section)


def load_results(results_dir):
    results = {}
    for name in sorted(os.listdir(results_dir)):
        match = re.fullmatch(r"(\w+)-c(\d+)-n(\d+)\.json", name)
        if not match:
            continue
        try:
            with open(os.path.join(results_dir, name)) as f:
                report = json.load(f)
        except (OSError, ValueError):
            continue
        results[(match[1], int(match[2]), int(match[3]))] = report
    return results


def render(results, results_dir, command):
    lines = [
        SECTION,
        "",
        f"Measured on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}`.",
        "",
        f"Machine: {machine()}. The load generator (`paxid bench`, closed loop, one",
        "keep-alive HTTP/1.1 connection per client) shares these cores with the system",
        "under test; each system runs alone, one after the other, in the same run.",
        "",
    ]
    lines += [f"- {line}" for line in read_lines(results_dir, "setup.txt")]
    lines += [
        "",
        "| system | clients | count | requests/s | IDs/s | p50 ms | p99 ms | p999 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(results, key=lambda k: (SYSTEMS.index(k[0]) if k[0] in SYSTEMS else 9, k[2], k[1])):
        r = results[key]
        l = r["latency_ms"]
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {r['requests_per_s']:,.0f} | {r['ids_per_s']:,.0f} "
            f"| {l['p50']:.3f} | {l['p99']:.3f} | {l['p999']:.3f} | {r['errors']} |"
        )
    lines += ["", "Targets (reported, not asserted):", ""]
    lines += ["| target | measured | met |", "|---|---|---|"]
    lines += targets(results)
    notes = read_lines(results_dir, "notes.txt")
    violations = [k for k, r in results.items() if r.get("order_violations")]
    notes += [f"{k[0]} at {k[1]} clients, count {k[2]}: {results[k]['order_violations']} IDs out of order" for k in violations]
    for key, r in sorted(results.items()):
        if r.get("errors"):
            notes.append(
                f"{key[0]} at {key[1]} clients, count {key[2]}: {r['errors']} errors; first: {r.get('first_error')}"
            )
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def targets(results):
    def rps(system, clients, count=1):
        r = results.get((system, clients, count))
        return r["requests_per_s"] if r else None

    def p99(system, clients, count=1):
        r = results.get((system, clients, count))
        return r["latency_ms"]["p99"] if r else None

    rows = []
    paxid, etcd, ceiling = rps("paxid", 256), rps("etcd", 256), rps("ceiling", 256)
    rows.append(ratio_row("paxid / etcd, requests/s at 256 clients", paxid, etcd, lambda x: x >= 10, "≥ 10×"))
    rows.append(ratio_row("paxid / ceiling, requests/s at 256 clients", paxid, ceiling, lambda x: x >= 0.7, "≥ 0.7×"))
    rows.append(ratio_row("paxid p99 / etcd p99 at 1 client", p99("paxid", 1), p99("etcd", 1), lambda x: x < 0.5, "< 0.5×"))
    blocks = [r["ids_per_s"] for (s, _, n), r in results.items() if s == "paxid" and n == 1000]
    best = max(blocks) if blocks else None
    if best is None:
        rows.append("| paxid IDs/s with count 1000 (best of 1/16/256 clients) ≥ 100 M | not measured | n/a |")
    else:
        met = "yes" if best >= 100e6 else "no"
        rows.append(f"| paxid IDs/s with count 1000 (best of 1/16/256 clients) ≥ 100 M | {best / 1e6:,.1f} M | {met} |")
    return rows


def ratio_row(label, numerator, denominator, ok, goal):
    if numerator is None or denominator is None or denominator == 0:
        return f"| {label} {goal} | not measured | n/a |"
    value = numerator / denominator
    return f"| {label} {goal} | {value:.2f}× | {'yes' if ok(value) else 'no'} |"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or "?"
    memory = "?"
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    for line in free:
        if line.startswith("Mem:"):
            memory = line.split()[1]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{nproc} cores (`nproc`), {cpu}, {memory} GiB memory (`free -g`), "
        f"{platform.system()} {platform.release()}, load average {load} when the report was written"
    )


def read_lines(results_dir, name):
    try:
        with open(os.path.join(results_dir, name)) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []


def write_section(output, section):
    try:
        with open(output) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = re.search(r"^## ", text[start + len(SECTION):], flags=re.M)
        end = start + len(SECTION) + following.start() if following else len(text)
        rest = text[end:]
        text = text[:start] + section + ("\n" + rest if rest else "")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
