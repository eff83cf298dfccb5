#!/usr/bin/env python3
"""Check that the selectors in rendered Kubernetes manifests select something.

A schema validator accepts a Service whose selector has a typo: it is valid
YAML that routes to nothing. This script reads rendered manifests (for
example `kubectl kustomize k8s/overlays/example | check_selectors.py -`) and
fails when:

  - a StatefulSet/Deployment/DaemonSet selector does not match its own pod
    template labels (the API server would reject it too, but only online);
  - a Service, PodDisruptionBudget, pod (anti-)affinity labelSelector, or
    NetworkPolicy podSelector (the policy's own and every from/to peer in the
    same namespace) matches no pod template;
  - a StatefulSet's serviceName is not a headless Service (clusterIP: None)
    in the same namespace whose selector matches the StatefulSet's pods;
  - a configMapKeyRef/secretKeyRef/envFrom names a ConfigMap or Secret that
    is not in the manifests (or lacks the key), unless it is declared as
    provided from outside with --external-secret NAME.

Exit status: 0 when every check passes, 1 with one line per failure.
Needs PyYAML.
"""

import argparse
import sys

import yaml

WORKLOAD_KINDS = {"StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="manifest files, '-' for stdin")
    parser.add_argument(
        "--external-secret",
        action="append",
        default=[],
        metavar="NAME",
        help="a Secret that is created outside these manifests",
    )
    args = parser.parse_args()

    objects = []
    for name in args.files:
        stream = sys.stdin if name == "-" else open(name, encoding="utf-8")
        with stream:
            objects.extend(doc for doc in yaml.safe_load_all(stream) if doc)

    failures = Checker(objects, set(args.external_secret)).run()
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        print(f"check_selectors: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    return 0


class Checker:
    def __init__(self, objects, external_secrets):
        self.objects = objects
        self.external_secrets = external_secrets
        self.failures = []
        self.passes = 0
        # (namespace, "Kind/name", labels, pod spec) for every pod template.
        self.templates = [
            (namespace(o), ident(o), template_labels(o), pod_spec(o))
            for o in objects
            if o.get("kind") in WORKLOAD_KINDS
        ]

    def run(self):
        if not self.templates:
            self.fail("no workloads (StatefulSet/Deployment/DaemonSet) found in the input")
        for obj in self.objects:
            kind = obj.get("kind")
            if kind in WORKLOAD_KINDS:
                self.check_workload(obj)
            elif kind == "Service":
                self.check_service(obj)
            elif kind == "PodDisruptionBudget":
                self.check_selects_pods(obj, "selector", obj["spec"].get("selector"))
            elif kind == "NetworkPolicy":
                self.check_network_policy(obj)
        print(f"check_selectors: {self.passes} checks passed, {len(self.failures)} failed")
        return self.failures

    def fail(self, message):
        self.failures.append(message)

    def check(self, ok, message):
        if ok:
            self.passes += 1
        else:
            self.fail(message)

    def check_selects_pods(self, obj, what, selector, any_namespace=False):
        """At least one pod template (in obj's namespace) matches selector."""
        if selector is None:
            self.fail(f"{ident(obj)}: {what} is missing")
            return
        ns = namespace(obj)
        matched = [
            tid
            for tns, tid, labels, _ in self.templates
            if (any_namespace or tns == ns) and selector_matches(selector, labels)
        ]
        self.check(
            matched,
            f"{ident(obj)}: {what} {show(selector)} matches no pod template; templates: "
            + "; ".join(f"{tid} {show(labels)}" for _, tid, labels, _ in self.templates),
        )

    def check_workload(self, obj):
        spec = obj["spec"]
        labels = template_labels(obj)
        selector = spec.get("selector")
        self.check(
            selector is not None and selector_matches(selector, labels),
            f"{ident(obj)}: selector {show(selector)} does not match its pod template labels {show(labels)}",
        )
        pod = pod_spec(obj)
        for what, term in affinity_terms(pod):
            any_ns = bool(term.get("namespaces") or term.get("namespaceSelector") is not None)
            self.check_selects_pods(obj, what, term.get("labelSelector"), any_namespace=any_ns)
        self.check_references(obj, pod)
        if obj.get("kind") == "StatefulSet":
            self.check_service_name(obj, labels)

    def check_service_name(self, obj, labels):
        name = obj["spec"].get("serviceName")
        if not name:
            self.fail(f"{ident(obj)}: serviceName is not set")
            return
        services = [
            o
            for o in self.objects
            if o.get("kind") == "Service" and o["metadata"]["name"] == name and namespace(o) == namespace(obj)
        ]
        if not services:
            self.fail(f"{ident(obj)}: serviceName {name!r} names no Service in namespace {namespace(obj) or '(none)'}")
            return
        svc = services[0]["spec"]
        self.check(
            svc.get("clusterIP") == "None",
            f"{ident(obj)}: serviceName {name!r} is not headless (clusterIP: {svc.get('clusterIP')!r}, want None)",
        )
        selector = svc.get("selector") or {}
        self.check(
            bool(selector) and selector_matches({"matchLabels": selector}, labels),
            f"{ident(obj)}: headless Service {name!r} selector {show(selector)} does not select its pods {show(labels)}",
        )

    def check_service(self, obj):
        selector = obj["spec"].get("selector")
        if not selector:
            # A Service without a selector has hand-made endpoints; nothing to match.
            return
        self.check_selects_pods(obj, "selector", {"matchLabels": selector})

    def check_network_policy(self, obj):
        spec = obj["spec"]
        self.check_selects_pods(obj, "podSelector", spec.get("podSelector"))
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                for j, peer in enumerate(rule.get(peers_key) or []):
                    # A peer with a namespaceSelector selects pods in other
                    # namespaces, which are not in these manifests.
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        self.check_selects_pods(
                            obj, f"{direction}[{i}].{peers_key}[{j}].podSelector", peer["podSelector"]
                        )

    def check_references(self, obj, pod):
        ns = namespace(obj)
        present = {
            (o["kind"], o["metadata"]["name"]): o
            for o in self.objects
            if o.get("kind") in ("ConfigMap", "Secret") and namespace(o) == ns
        }
        for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    ref = source.get(key)
                    if ref and not ref.get("optional"):
                        self.check_reference(obj, present, kind, ref["name"], ref.get("key"), env["name"])
            for env_from in container.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    ref = env_from.get(key)
                    if ref and not ref.get("optional"):
                        self.check_reference(obj, present, kind, ref["name"], None, "envFrom")

    def check_reference(self, obj, present, kind, name, key, env_name):
        if kind == "Secret" and name in self.external_secrets:
            return
        target = present.get((kind, name))
        if target is None:
            self.fail(f"{ident(obj)}: {env_name} refers to {kind} {name!r}, which is not in the manifests")
            return
        data = {**(target.get("data") or {}), **(target.get("stringData") or {})}
        self.check(
            key is None or key in data,
            f"{ident(obj)}: {env_name} refers to key {key!r} of {kind} {name!r}, which has keys {sorted(data)}",
        )


def selector_matches(selector, labels):
    """Kubernetes LabelSelector semantics; an empty selector matches all."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def affinity_terms(pod):
    """Every pod affinity and anti-affinity term, required and preferred."""
    affinity = pod.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        for i, term in enumerate(section.get("requiredDuringSchedulingIgnoredDuringExecution") or []):
            yield f"{kind}.required[{i}].labelSelector", term
        for i, weighted in enumerate(section.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
            yield f"{kind}.preferred[{i}].labelSelector", weighted.get("podAffinityTerm") or {}


def template_labels(obj):
    return ((obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}


def pod_spec(obj):
    return (obj["spec"].get("template") or {}).get("spec") or {}


def namespace(obj):
    return obj.get("metadata", {}).get("namespace", "")


def ident(obj):
    ns = namespace(obj)
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{obj['metadata']['name']}"


def show(value):
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()


if __name__ == "__main__":
    sys.exit(main())
