"""Which node a pod goes to: kube-scheduler's filters and scoring, reduced to what broker pods use.

Filter: ``nodeSelector`` and required node affinity (``matchExpressions`` with In, NotIn, Exists,
DoesNotExist). Score: fewest pods matching the pod's preferred anti-affinity terms in the same topology domain
(weighted), then fewest pods, then node order, so a StatefulSet's brokers land on different nodes (zones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["choose_node", "matches_expressions", "matches_selector"]


def matches_expressions(labels: Mapping[str, str], expressions: Sequence[Mapping[str, Any]]) -> bool:
    for expression in expressions:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unsupported operator {operator!r}")
    return True


def matches_selector(labels: Mapping[str, str], selector: Mapping[str, Any] | None) -> bool:
    """A LabelSelector (matchLabels + matchExpressions); an empty selector matches everything."""
    if not selector:
        return True
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(key) != value for key, value in wanted.items()):
        return False
    return matches_expressions(labels, selector.get("matchExpressions") or [])


def _fits(pod_spec: Mapping[str, Any], node_labels: Mapping[str, str]) -> bool:
    if any(node_labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    terms = required.get("nodeSelectorTerms") or []
    return any(matches_expressions(node_labels, term.get("matchExpressions") or []) for term in terms)


def choose_node(
    pod: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, str]],
    placed: Sequence[tuple[str, Mapping[str, Any]]],
) -> str | None:
    """The node for ``pod`` among ``nodes`` (name -> labels, in preference order), given the pods already
    ``placed`` ((node, pod) pairs); None when no node fits."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace")
    candidates = [name for name, labels in nodes.items() if _fits(spec, labels)]
    if not candidates:
        return None
    terms = ((spec.get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []

    def score(node: str) -> tuple[float, int, int]:
        penalty = 0.0
        for weighted in terms:
            term = weighted.get("podAffinityTerm") or {}
            key = term.get("topologyKey", "kubernetes.io/hostname")
            domain = nodes[node].get(key)
            for other_node, other in placed:
                same_domain = domain is not None and nodes.get(other_node, {}).get(key) == domain
                other_meta = other.get("metadata") or {}
                if (
                    same_domain
                    and other_meta.get("namespace") == namespace
                    and matches_selector(other_meta.get("labels") or {}, term.get("labelSelector"))
                ):
                    penalty += float(weighted.get("weight", 1))
        count = sum(1 for other_node, _ in placed if other_node == node)
        return penalty, count, list(nodes).index(node)

    return min(candidates, key=score)
