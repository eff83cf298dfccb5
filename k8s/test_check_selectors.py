#!/usr/bin/env python3
"""Plant a bug in the rendered example overlay, one at a time, and assert that
check_selectors.py catches each one (and passes on the unmodified rendering).
A checker that cannot fail proves nothing.

Usage: k8s/test_check_selectors.py   (needs kubectl and PyYAML)
"""

import copy
import os
import subprocess
import sys
import unittest

import yaml

K8S_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(K8S_DIR, "check_selectors.py")


def render():
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(K8S_DIR, "overlays", "example")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def run_checker(docs):
    return subprocess.run(
        [sys.executable, CHECKER, "-"],
        input=yaml.safe_dump_all(docs),
        capture_output=True,
        text=True,
    )


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def pod(docs, name):
    return find(docs, "StatefulSet", name)["spec"]["template"]["spec"]


def set_key(mapping, key, value):
    mapping[key] = value


# name -> (mutation, text the failure message must contain)
MUTATIONS = {
    "workload selector differs from its template": (
        lambda d: set_key(find(d, "StatefulSet", "sequencer")["spec"]["selector"]["matchLabels"],
                          "app.kubernetes.io/component", "seq"),
        "StatefulSet/paxid/sequencer: selector",
    ),
    "Service selector typo": (
        lambda d: set_key(find(d, "Service", "sequencer")["spec"]["selector"],
                          "app.kubernetes.io/component", "sequenser"),
        "Service/paxid/sequencer: selector",
    ),
    "PDB selector typo": (
        lambda d: set_key(find(d, "PodDisruptionBudget", "acceptor")["spec"]["selector"]["matchLabels"],
                          "app.kubernetes.io/name", "paxd"),
        "PodDisruptionBudget/paxid/acceptor: selector",
    ),
    "anti-affinity selector typo": (
        lambda d: set_key(pod(d, "acceptor")["affinity"]["podAntiAffinity"]
                          ["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]["matchLabels"],
                          "app.kubernetes.io/component", "acceptors"),
        "podAntiAffinity.required[0].labelSelector",
    ),
    "NetworkPolicy podSelector typo": (
        lambda d: set_key(find(d, "NetworkPolicy", "learner")["spec"]["podSelector"]["matchLabels"],
                          "app.kubernetes.io/component", "lerner"),
        "NetworkPolicy/paxid/learner: podSelector",
    ),
    "NetworkPolicy peer typo": (
        lambda d: set_key(find(d, "NetworkPolicy", "acceptor")["spec"]["ingress"][0]["from"][0]
                          ["podSelector"]["matchLabels"], "app.kubernetes.io/component", "sequencers"),
        "ingress[0].from[0].podSelector",
    ),
    "serviceName names a ClusterIP Service": (
        lambda d: set_key(find(d, "Service", "learner-hs")["spec"], "clusterIP", "10.0.0.5"),
        "is not headless",
    ),
    "serviceName names no Service": (
        lambda d: set_key(find(d, "StatefulSet", "learner")["spec"], "serviceName", "learner-headless"),
        "names no Service",
    ),
    "Secret key typo": (
        lambda d: set_key(pod(d, "acceptor")["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"],
                          "key", "tokn"),
        "refers to key 'tokn'",
    ),
    "ConfigMap name without the generator's hash": (
        lambda d: set_key(pod(d, "learner")["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"],
                          "name", "paxid-peers"),
        "refers to ConfigMap 'paxid-peers'",
    ),
}


class CheckSelectorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = render()

    def test_example_overlay_passes(self):
        result = run_checker(self.docs)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_each_planted_bug_is_caught(self):
        for name, (mutate, expected) in MUTATIONS.items():
            with self.subTest(name):
                docs = copy.deepcopy(self.docs)
                mutate(docs)
                result = run_checker(docs)
                self.assertEqual(result.returncode, 1, f"{name}: not detected\n{result.stdout}")
                self.assertIn(expected, result.stdout)


if __name__ == "__main__":
    unittest.main()
