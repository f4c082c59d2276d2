"""Growing the brokers' volumes when spec.storage.size grows: pure decisions, unit-tested without a cluster.

A StatefulSet's volumeClaimTemplates cannot change, and the StatefulSet controller never resizes the claims it
already made. So, as Strimzi does, the operator (:mod:`gafka_operator.reconcile`) does it in two steps:

1. it patches every broker claim ``data-NAME-i`` to the new ``spec.resources.requests.storage``. The API server
   only lets a *bound* claim grow, and only when its StorageClass has ``allowVolumeExpansion: true``
   (admission plugin ``PersistentVolumeClaimResize``); the CSI resizer and the kubelet then grow the volume
   and its file system, which the claim reports (``status.capacity``, conditions ``Resizing`` and
   ``FileSystemResizePending``);
2. once every claim asks for the new size, it deletes the StatefulSet with ``propagationPolicy: Orphan`` (its
   pods and claims stay, the brokers keep running) and its normal apply path creates it again with the new
   template, so brokers added later get claims of the new size. The new StatefulSet adopts the pods (same
   selector, same pod template, hence the same revision): nothing restarts (``OnDelete`` updates anyway).

Volumes never shrink: a smaller size is refused (:attr:`VolumeAction.REFUSE`) and nothing changes. Which claims
count are those of brokers ``0..n-1`` (n: the larger of spec.replicas and the StatefulSet's replicas); a claim
left behind by a broker scaled away is grown when a scale-up brings it back into that range.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from gafka_operator.drift import parse_quantity
from gafka_operator.manifests import DATA_VOLUME, pvc_name

__all__ = [
    "ClaimState",
    "VolumeAction",
    "VolumePlan",
    "claim_broker_id",
    "claim_state",
    "claim_template_size",
    "plan_volumes",
    "resize_progress",
    "storage_quantity",
    "with_claim_size",
]


def storage_quantity(value: object) -> Decimal | None:
    """A storage size in bytes, or None when it is missing or not a positive Kubernetes quantity."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        amount = parse_quantity(value)
    except ValueError:
        return None
    return amount if amount.is_finite() and amount > 0 else None


# ------------------------------------------------------------------------------------------------- claims


@dataclass(frozen=True, slots=True)
class ClaimState:
    """What the decisions need to know about one broker claim."""

    name: str
    broker_id: int
    requested: str | None = None
    """spec.resources.requests.storage."""
    capacity: str | None = None
    """status.capacity.storage: what the volume has (None while the claim is not bound)."""
    phase: str = "Pending"
    resize_status: str | None = None
    """status.allocatedResourceStatuses.storage (``ControllerResizeInProgress``, ``NodeResizePending``, ...)."""
    conditions: tuple[str, ...] = ()
    """Types of the claim's conditions that are True (``Resizing``, ``FileSystemResizePending``)."""


def claim_broker_id(cluster: str, claim_name: str) -> int | None:
    """Broker ``i`` for claim ``data-CLUSTER-i`` (the StatefulSet's naming), else None."""
    match = re.fullmatch(re.escape(pvc_name(cluster, 0)[:-1]) + r"(0|[1-9][0-9]*)", claim_name)
    return int(match.group(1)) if match else None


def claim_state(cluster: str, pvc: Mapping[str, Any]) -> ClaimState | None:
    """A claim of ``cluster``'s brokers, or None when ``pvc`` is some other claim."""
    meta: Mapping[str, Any] = pvc.get("metadata") or {}
    name = str(meta.get("name", ""))
    broker_id = claim_broker_id(cluster, name)
    if broker_id is None:
        return None
    spec: Mapping[str, Any] = pvc.get("spec") or {}
    status: Mapping[str, Any] = pvc.get("status") or {}
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    capacity = (status.get("capacity") or {}).get("storage")
    resize_status = (status.get("allocatedResourceStatuses") or {}).get("storage")
    conditions = tuple(
        str(c.get("type"))
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    )
    return ClaimState(
        name=name,
        broker_id=broker_id,
        requested=None if requested is None else str(requested),
        capacity=None if capacity is None else str(capacity),
        phase=str(status.get("phase") or "Pending"),
        resize_status=None if resize_status is None else str(resize_status),
        conditions=conditions,
    )


# ------------------------------------------------------------------------------------- the claim template


def _data_template(sts: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for template in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        if isinstance(template, Mapping) and (template.get("metadata") or {}).get("name") == DATA_VOLUME:
            return template
    return None


def claim_template_size(sts: Mapping[str, Any]) -> str | None:
    """The size the StatefulSet's ``data`` template requests (None when it has none)."""
    template = _data_template(sts)
    if template is None:
        return None
    size = (((template.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return None if size is None else str(size)


def with_claim_size(sts: Mapping[str, Any], size: str) -> dict[str, Any]:
    """A copy of a desired StatefulSet whose ``data`` template requests ``size``: the apply path keeps the live
    size (it cannot change in place; growing it is this module's job) and still applies everything else."""
    copied: dict[str, Any] = copy.deepcopy(dict(sts))
    template = _data_template(copied)
    if template is not None:
        template["spec"]["resources"]["requests"]["storage"] = size
    return copied


# ------------------------------------------------------------------------------------------------ the plan


class VolumeAction(Enum):
    NONE = "None"
    """Claims and template have the spec's size (or there is nothing to grow yet)."""
    EXPAND = "ExpandingVolumes"
    """Patch ``claims`` to the new size; then replace the StatefulSet when ``replace`` says so."""
    REPLACE = "ReplacingStatefulSet"
    """Every claim asks for the new size: delete the StatefulSet (orphan) so it is created with the new template."""
    WAIT = "Waiting"
    """The template is stale but a scaling step is in progress: replace the StatefulSet once it is done."""
    REFUSE = "VolumeShrinkRefused"
    """The spec asks for less than a claim (or the template) has: volumes cannot shrink."""
    INVALID = "InvalidStorageSize"
    """spec.storage.size is not a positive quantity."""


@dataclass(frozen=True, slots=True)
class VolumePlan:
    action: VolumeAction
    size: str
    claims: tuple[str, ...] = ()
    """The claims to patch (EXPAND), or the ones that refuse to shrink (REFUSE)."""
    replace: bool = False
    """Replace the StatefulSet (after the claims grew, for EXPAND)."""
    message: str = ""

    @property
    def refused(self) -> bool:
        return self.action in (VolumeAction.REFUSE, VolumeAction.INVALID)


def _names(claims: Sequence[ClaimState]) -> str:
    return ", ".join(c.name for c in sorted(claims, key=lambda c: c.broker_id))


def plan_volumes(
    size: str,
    template: str | None,
    claims: Sequence[ClaimState],
    *,
    steady: bool = True,
    replaceable: bool = True,
) -> VolumePlan:
    """The next step towards volumes of ``size`` (spec.storage.size).

    ``template`` is the live StatefulSet's ``data`` template size (None while there is no StatefulSet),
    ``claims`` the brokers' claims, ``steady`` whether scaling is at rest (the StatefulSet is only replaced
    then), ``replaceable`` whether the template differs from the desired one in its size alone (another change
    of the template cannot be made by replacing it silently: it is reported as an immutable field, not forced).
    """
    want = storage_quantity(size)
    if want is None:
        return VolumePlan(
            VolumeAction.INVALID, size, message=f"spec.storage.size {size!r} is not a positive quantity (e.g. 10Gi)"
        )
    larger = [c for c in claims if (have := storage_quantity(c.requested)) is not None and have > want]
    have_template = storage_quantity(template)
    if larger:
        return VolumePlan(
            VolumeAction.REFUSE, size, tuple(c.name for c in larger),
            message=f"spec.storage.size {size} is smaller than what claims {_names(larger)} request "
            f"({', '.join(sorted({str(c.requested) for c in larger}))}): volumes cannot shrink; nothing changed",
        )  # fmt: skip
    if have_template is not None and have_template > want:
        return VolumePlan(
            VolumeAction.REFUSE, size,
            message=f"spec.storage.size {size} is smaller than the StatefulSet's claim template ({template}): "
            "volumes cannot shrink; nothing changed",
        )  # fmt: skip
    stale = have_template is not None and have_template < want and replaceable
    smaller = [c for c in claims if (have := storage_quantity(c.requested)) is not None and have < want]
    if smaller:
        return VolumePlan(
            VolumeAction.EXPAND, size, tuple(c.name for c in sorted(smaller, key=lambda c: c.broker_id)),
            replace=stale and steady,
            message=f"growing claims {_names(smaller)} to {size}",
        )  # fmt: skip
    if stale and not steady:
        return VolumePlan(
            VolumeAction.WAIT, size,
            message=f"claims request {size}; the StatefulSet is recreated with the new claim template once "
            "scaling is done",
        )  # fmt: skip
    if stale:
        return VolumePlan(
            VolumeAction.REPLACE, size, replace=True,
            message=f"recreating the StatefulSet with claim template size {size} (was {template}); "
            "its pods and claims stay",
        )  # fmt: skip
    return VolumePlan(VolumeAction.NONE, size)


# --------------------------------------------------------------------------------------------- the progress

_STATE_ORDER = ("Infeasible", "FileSystemResizePending", "NodeResize", "Resizing", "ControllerResize", "Requested")


def _claim_progress(claim: ClaimState) -> str | None:
    """Where a claim's resize is, in its own words; None when its volume has what it asks for (or it is not
    bound yet: then the volume is made at the requested size)."""
    requested, capacity = storage_quantity(claim.requested), storage_quantity(claim.capacity)
    if requested is None or capacity is None or capacity >= requested:
        return None
    if claim.resize_status:
        return claim.resize_status
    for kind in ("FileSystemResizePending", "Resizing"):
        if kind in claim.conditions:
            return kind
    return "Requested"


def resize_progress(claims: Sequence[ClaimState]) -> tuple[str, str] | None:
    """(reason, message) while some claim's volume is smaller than the claim asks for, else None.

    Reported, never waited for: without a CSI driver that can expand (or until the kubelet grows a file
    system) a claim stays at ``Requested``; the brokers keep running on the old size meanwhile.
    """
    pending = [(c, state) for c in sorted(claims, key=lambda c: c.broker_id) if (state := _claim_progress(c))]
    if not pending:
        return None
    ranks = [next((i for i, key in enumerate(_STATE_ORDER) if key in state), len(_STATE_ORDER)) for _, state in pending]
    worst = pending[ranks.index(min(ranks))][1]
    reason = "ResizeInfeasible" if "Infeasible" in worst else ("ResizeRequested" if worst == "Requested" else worst)
    message = "; ".join(f"{c.name}: {c.capacity} of {c.requested} ({state})" for c, state in pending)
    return reason, message
