"""One reconcile pass of a GafkaCluster: observe, decide (:mod:`gafka_operator.planning`), act once, report.

:class:`ClusterReconciler` is level-based: kopf's create/update/resume handlers run a pass at once, a per-cluster
kopf daemon runs one every ``resync_s`` seconds (drift is corrected there) and whenever a broker pod changes, and
all passes of a cluster are serialized by one lock. A pass:

1. parses the spec (an invalid spec only updates the status: nothing is touched);
2. loads the cluster's controller when this replica is the active one (:class:`~.controllers.ControllerHost`);
3. reads the StatefulSet, the broker pods and the controller's metadata;
4. plans the scaling step (:func:`~.planning.plan_scale`) and performs its controller part (drain, rebalance,
   forget); grows the broker volumes when spec.storage.size grew (:func:`~.volumes.plan_volumes`: claims
   patched, then the StatefulSet deleted with its pods and claims orphaned, for step 5 to create it again);
5. applies every object of :func:`~.manifests.build_all` that drifted (server-side apply of the whole object
   under one field manager; fields that cannot change in place are reported, not forced), with the
   StatefulSet's replicas and balance annotation as the plan says;
6. fences brokers whose pods are failed, overdue in termination or not ready past the grace period;
7. restarts at most one outdated pod (:func:`~.planning.next_pod_to_roll`);
8. copies node racks onto broker pods (``spec.rack``);
9. writes the status (only when it changed) and posts an Event for every action.

Nothing here imports kopf: events go through an injected ``emit`` callable, so a pass can run anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gafka_broker.controller.controller import ControllerSettings
from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import BrokerInfo, ClusterMetadata
from gafka_operator import API_GROUP, autoscaling, manifests, volumes
from gafka_operator.controllers import ClusterKey, ControllerHost, HostedController, OperatorMetrics
from gafka_operator.kube import ApiException, KubeApi, ObjectRef
from gafka_operator.kube_store import ForeignMetadataError
from gafka_operator.planning import (
    BALANCED_ANNOTATION,
    PodState,
    RollKind,
    ScaleDecision,
    ScaleKind,
    fence_reason,
    max_replication_factor,
    next_pod_to_roll,
    offline_partitions,
    plan_scale,
    pod_state,
    under_replicated_partitions,
)
from gafka_operator.spec import ClusterSpec, SpecError
from gafka_operator.status import Condition, broker_statuses, condition, merge_conditions

__all__ = ["CLUSTER_CONDITIONS", "ClusterReconciler", "Emit", "PassResult", "ReconcileSettings"]

logger = logging.getLogger(__name__)

Emit = Callable[[Mapping[str, Any], str, str, str], None]
"""``emit(body, type, reason, message)``: post a Kubernetes Event about ``body`` (type Normal or Warning)."""

CLUSTER_CONDITIONS = ("Ready", "Reconciling", "Degraded", "Warning", "StorageResizing")
_COUNTING_REASONS = frozenset({"UnderReplicatedPartitions", "OfflinePartitions"})
"""Degraded reasons whose message is a count: an Event when they start, not on every change of the count."""


MISSING_LABEL = "missing-label"
"""``gafka.dev/rack-source`` of a pod whose node has no spec.rack.topologyKey label (no rack)."""


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    platform: manifests.Platform
    resync_s: float = 30.0
    """Seconds between two passes of a cluster when nothing wakes it (drift correction, not-ready checks)."""
    not_ready_grace_s: float = 30.0
    """A broker pod not ready for this long gets its broker fenced."""
    rack_awareness: bool = True
    autoscale_every_s: float = 15.0
    """How often the built-in autoscaler samples the brokers' byte and CPU counters (spec.autoscaling)."""


@dataclass
class PassResult:
    """What one pass did and saw (for logs, metrics and tests)."""

    actions: list[str] = field(default_factory=list)
    scale: ScaleDecision | None = None
    roll: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(reason, message) for the Warning condition besides a refused scale-down."""
    volumes: str = ""
    """What growing the volumes (spec.storage.size) is doing or waiting for (Reconciling while it lasts)."""


@dataclass
class _Observed:
    sts: dict[str, Any] | None
    pods: list[PodState]
    raw_pods: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _VolumeStep:
    replaced: bool
    """The StatefulSet was deleted (orphaning its pods and claims) to be created with a new claim template."""
    progress: tuple[str, str] | None
    """(reason, message) of StorageResizing while a claim's volume is smaller than it asks for."""


class ClusterReconciler:
    """Reconciles one GafkaCluster (see the module docstring)."""

    def __init__(
        self,
        key: ClusterKey,
        api: KubeApi,
        host: ControllerHost,
        settings: ReconcileSettings,
        *,
        is_active: Callable[[], bool],
        emit: Emit,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.key = key
        self.api = api
        self.host = host
        self.settings = settings
        self.is_active = is_active
        self.emit = emit
        self.metrics = metrics or host.metrics
        self.clock = clock
        self.lock = asyncio.Lock()
        self.body: dict[str, Any] | None = None
        """The latest GafkaCluster seen (events about pods are posted on it)."""
        self._wake = asyncio.Event()
        self._due: dt.datetime | None = None
        self._samples: dict[int, autoscaling.Sample] = {}
        self._recommendations: list[autoscaling.Recommendation] = []
        self._cpu_unmeasured = False
        """The brokers' last measurement had no CPU counter for targetCPUUtilization (reported until the next)."""
        self._competitors: tuple[float, list[str]] | None = None
        """(when, names) of the HorizontalPodAutoscalers last seen targeting the cluster (spec.autoscaling)."""
        self._written: tuple[str, dict[str, Any]] | None = None
        """(uid, status) this reconciler last wrote (kopf's body catches up with it a moment later)."""
        self._fenced: set[tuple[str, str]] = set()
        """(pod uid, reason) already fenced: a live-but-unready broker unfences itself with its next heartbeat,
        and must not be fenced again on every pass of the same episode."""

    # -- driving -------------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self, body: Mapping[str, Any]) -> None:
        """The kopf daemon's body: a pass now, then on every wake-up or ``resync_s``. ``body`` is kopf's live
        view of the object. Cancelled by kopf when the operator pauses (peering), stops, or the object goes;
        the controller is unloaded then, because another replica may take over."""
        self._written = None  # another replica may have written since this one last ran
        try:
            while True:
                self._wake.clear()
                try:
                    await self.reconcile(body)
                except Exception as exc:
                    self.metrics.reconciles.labels("GafkaCluster", "error").inc()
                    logger.warning("event=reconcile_failed namespace=%s cluster=%s error=%r", *self.key, exc)
                delay = self.settings.resync_s
                if self._recommendations or self._samples:  # autoscaling: sample on time
                    delay = min(delay, self.settings.autoscale_every_s)
                if self._due is not None:  # a not-ready pod reaches its grace period before the next resync
                    delay = min(delay, max(0.5, (self._due - self.clock()).total_seconds()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await self.host.remove(self.key)
            self.metrics.forget(self.key)

    async def reconcile(self, body: Mapping[str, Any]) -> PassResult:
        async with self.lock:
            self.body = _plain(body)
            result = await self._pass(self.body)
            self.metrics.reconciles.labels("GafkaCluster", "ok").inc()
            return result

    async def fence(self, broker_id: int, reason: str, episode: tuple[str, str] | None = None) -> bool:
        """Fence ``broker_id`` at once (its leaderships move to in-sync replicas) if this replica hosts the
        cluster's controller and the broker is not fenced yet. Returns whether it fenced."""
        hosted = self.host.get(self.key) if self.is_active() else None
        if hosted is None or (episode is not None and episode in self._fenced):
            return False
        metadata = await asyncio.to_thread(hosted.controller.metadata)
        broker = metadata.brokers.get(broker_id)
        if broker is None or broker.fenced:
            return False
        await asyncio.to_thread(hosted.controller.fence_broker, broker_id)
        if episode is not None:
            self._fenced.add(episode)
        self.metrics.actions.labels("fence").inc()
        logger.warning("event=broker_fenced namespace=%s cluster=%s broker=%d reason=%s", *self.key, broker_id, reason)
        if self.body is not None:
            self.emit(
                self.body,
                "Warning",
                "BrokerFenced",
                f"broker {broker_id} fenced ({reason}): its leaderships move to in-sync replicas",
            )
        return True

    # -- the pass ------------------------------------------------------------------------------------
    async def _pass(self, body: dict[str, Any]) -> PassResult:
        result = PassResult()
        now = self.clock()
        meta = body["metadata"]
        generation = int(meta.get("generation") or 0)
        # kopf's view of the object may not show our last status write yet: ours is the latest
        mine = self._written[1] if self._written is not None and self._written[0] == meta.get("uid") else None
        old_status: Mapping[str, Any] = mine or body.get("status") or {}
        try:
            spec = ClusterSpec.from_mapping(body.get("spec"))
        except SpecError as exc:
            conditions = [
                Condition("Ready", False, "InvalidSpec", str(exc)),
                Condition("Reconciling", False, "InvalidSpec", "fix the spec to continue"),
                Condition("Degraded", True, "InvalidSpec", str(exc)),
            ]
            invalid = {
                "observedGeneration": generation,
                "conditions": merge_conditions(
                    old_status.get("conditions"), conditions, now=now, generation=generation, managed=("Warning",)
                ),
            }
            await self._write_status(body, old_status, invalid, result)
            return result

        ref = manifests.ClusterRef.from_body(body)
        cluster_id = manifests.cluster_id(ref, spec)
        hosted, controller_problem = await self._controller(ref, spec, cluster_id)
        metadata = await asyncio.to_thread(hosted.controller.metadata) if hosted is not None else None
        observed = await asyncio.to_thread(self._observe, ref)

        # scaling: plan, then the controller's part of the step
        sts = observed.sts
        current = int(sts["spec"]["replicas"]) if sts is not None else _orphaned_replicas(observed.pods)
        balanced_raw = ((sts or {}).get("metadata", {}).get("annotations") or {}).get(BALANCED_ANNOTATION)
        balanced = int(balanced_raw) if balanced_raw and balanced_raw.isdigit() else None
        plan = plan_scale(spec.replicas, current, balanced, metadata, (p.broker_id for p in observed.pods))
        result.scale = plan
        scale_error = None
        if hosted is not None:
            try:
                metadata = await self._scale_step(body, hosted, plan, result) or metadata
            except ControllerError as exc:
                scale_error = f"{exc.code}: {exc.message}"
                logger.warning("event=scale_step_failed namespace=%s cluster=%s error=%s", *self.key, scale_error)

        # volumes: grow the claims to spec.storage.size, replace the StatefulSet for its new claim template
        grown = await asyncio.to_thread(self._grow_volumes, body, ref, spec, plan, observed, current, result)
        if grown.replaced:
            observed = await asyncio.to_thread(self._observe, ref)

        # the objects
        apply_problems = await asyncio.to_thread(self._apply_all, body, ref, spec, plan, observed, result)
        if any(action.startswith("StatefulSet") for action in result.actions):
            observed = await asyncio.to_thread(self._observe, ref)
            sts = observed.sts

        # broker pods: fence the lost, roll the outdated, copy racks
        await self._fence_lost(observed.pods, now)
        roll = next_pod_to_roll(
            observed.pods,
            spec.replicas,
            ((sts or {}).get("status") or {}).get("updateRevision"),
            metadata,
            up_to_date=_sts_observed(sts),
        )
        if plan.in_progress or sts is None:
            roll_message = ""
        elif roll.kind is RollKind.RESTART and roll.pod is not None:
            roll_message = roll.message
            try:  # only that incarnation of the pod (uid precondition): a pod recreated meanwhile is left alone
                await asyncio.to_thread(
                    self.api.delete, ObjectRef("Pod", ref.namespace, roll.pod.name), uid=roll.pod.uid
                )
            except ApiException as error:
                if error.status != 409:
                    raise
            else:
                self._act(body, result, "RollingRestart", f"{roll.message}: pod template changed", "roll")
        else:
            roll_message = roll.message
        result.roll = roll_message
        racks = await asyncio.to_thread(self._copy_racks, spec, observed.raw_pods, result)
        steady = (
            plan.kind is ScaleKind.STEADY
            and not roll_message
            and all(p.ready and not p.deleting for p in observed.pods)
            and len(observed.pods) == spec.replicas
        )
        await self._autoscale(body, spec, steady, hosted, result)

        # status (the metadata again: the steps above may have changed it)
        if hosted is not None:
            metadata = await asyncio.to_thread(hosted.controller.metadata)
        ready = int(((sts or {}).get("status") or {}).get("readyReplicas") or 0)
        existing = int(((sts or {}).get("status") or {}).get("replicas") or 0)
        # the StatefulSet's count lags behind the pods by a moment: conditions trust the lower of the two
        ready_pods = sum(1 for p in observed.pods if p.ready and not p.deleting and p.broker_id < spec.replicas)
        if not ((sts or {}).get("status") or {}).get("observedGeneration"):
            # no StatefulSet (or one not synced yet), e.g. while it is replaced for a new claim template: the pods
            # (which stay) tell, so a running cluster does not look unready for that moment
            ready, existing = ready_pods, sum(1 for p in observed.pods if not p.deleting)
        conditions = self._conditions(
            spec,
            plan,
            roll_message,
            min(ready, ready_pods),
            current,
            metadata,
            apply_problems,
            controller_problem,
            scale_error,
            result,
        )
        conditions += self._storage_conditions(body, old_status, grown.progress)
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": existing,
            "readyReplicas": ready,
            "labelSelector": manifests.label_selector(ref.name),
            "bootstrap": manifests.bootstrap_url(ref, spec, self.settings.platform),
            "kafkaBootstrap": manifests.kafka_bootstrap(ref, spec, self.settings.platform),
            "clusterId": cluster_id,
            "brokers": broker_statuses(spec.replicas, observed.pods, metadata, racks),
            "conditions": merge_conditions(
                old_status.get("conditions"), conditions, now=now, generation=generation, managed=CLUSTER_CONDITIONS
            ),
        }
        await self._write_status(body, old_status, status, result)
        self.metrics.ready_brokers.labels(*self.key).set(ready)
        if metadata is not None:
            self.metrics.under_replicated.labels(*self.key).set(under_replicated_partitions(metadata))
        if result.actions:
            logger.info("event=reconciled namespace=%s cluster=%s actions=%s", *self.key, ",".join(result.actions))
        return result

    # -- steps ---------------------------------------------------------------------------------------
    async def _controller(
        self, ref: manifests.ClusterRef, spec: ClusterSpec, cluster_id: str
    ) -> tuple[HostedController | None, str | None]:
        """Load the controller when this replica is active; (hosted, why not)."""
        if not self.is_active():
            return None, "this operator replica is not the active one (yet)"
        labels = {
            "app.kubernetes.io/name": "gafka",
            "app.kubernetes.io/instance": ref.name,
            "app.kubernetes.io/component": "controller-metadata",
            "app.kubernetes.io/part-of": "gafka",
            "app.kubernetes.io/managed-by": "gafka-operator",
            "gafka.dev/cluster": ref.name,
        }
        settings = ControllerSettings(
            broker_session_timeout_ms=int(spec.setting("broker_session_timeout_ms")),
            leader_imbalance_check_interval_ms=int(spec.setting("leader_imbalance_check_interval_ms")),
        )
        owner = manifests.owner_reference(ref) if spec.storage.delete_claim else None
        try:
            hosted = await self.host.ensure(
                self.key, cluster_id=cluster_id, settings=settings, labels=labels, owner=owner
            )
        except ForeignMetadataError as exc:
            return None, str(exc)
        return hosted, None

    def _observe(self, ref: manifests.ClusterRef) -> _Observed:
        sts = self.api.get(ObjectRef("StatefulSet", ref.namespace, ref.name))
        selector = ",".join(f"{k}={v}" for k, v in sorted(manifests.selector_labels(ref.name).items()))
        raw_pods = self.api.list(ObjectRef("Pod", ref.namespace), label_selector=selector)
        pods = [state for state in map(pod_state, raw_pods) if state is not None]
        return _Observed(sts, sorted(pods, key=lambda p: p.broker_id), raw_pods)

    async def _scale_step(
        self, body: Mapping[str, Any], hosted: HostedController, plan: ScaleDecision, result: PassResult
    ) -> ClusterMetadata | None:
        controller = hosted.controller
        metadata: ClusterMetadata | None = None
        if plan.kind is ScaleKind.DRAIN:
            metadata = await asyncio.to_thread(controller.drain, plan.brokers)
            self._act(body, result, "Draining", plan.message + " before removing them", "drain")
            return metadata
        if plan.kind is ScaleKind.REBALANCE:
            metadata = await asyncio.to_thread(controller.rebalance, plan.brokers)
            self._act(body, result, "Rebalancing", plan.message, "rebalance")
            return metadata
        if plan.kind is ScaleKind.FORGET:
            for broker_id in plan.brokers:
                metadata = await asyncio.to_thread(controller.forget_broker, broker_id)
            self._act(body, result, "BrokersRemoved", plan.message, "forget")
            return metadata
        return None

    def _apply_all(
        self,
        body: Mapping[str, Any],
        ref: manifests.ClusterRef,
        spec: ClusterSpec,
        plan: ScaleDecision,
        observed: _Observed,
        result: PassResult,
    ) -> list[tuple[str, str]]:
        """Create or fix every object; returns the problems (reason, message): differences in fields that cannot
        change in place (reported, not forced) and objects the API server refused. The StatefulSet's claim size
        is left to :meth:`_grow_volumes` (it replaces the StatefulSet), and one being replaced is not touched."""
        immutable: list[str] = []
        problems: list[tuple[str, str]] = []
        for desired in manifests.build_all(ref, spec, self.settings.platform, replicas=plan.replicas):
            kind, name = desired["kind"], desired["metadata"]["name"]
            if kind == "StatefulSet":
                desired["metadata"].setdefault("annotations", {})[BALANCED_ANNOTATION] = str(plan.balanced)
                live = observed.sts
                if live is not None and live["metadata"].get("deletionTimestamp"):
                    continue  # orphaned for a new claim template: created again once it is gone
                live_size = volumes.claim_template_size(live) if live is not None else None
                if live_size is not None:
                    desired = volumes.with_claim_size(desired, live_size)
            else:
                live = self.api.get(ObjectRef(kind, ref.namespace, name))
            drift = manifests.desired_vs_actual(desired, live)
            if drift.immutable:
                immutable += [f"{kind} {name}: " + ".".join(str(p) for p in path) for path in drift.immutable]
                continue
            if drift.in_sync:
                continue
            try:
                self.api.apply(desired)
            except ApiException as error:  # e.g. a podTemplate the API server rejects: report, apply the rest
                problems.append(("ApplyFailed", f"{kind} {name}: {_api_message(error)}"))
                continue
            if drift.missing:
                self._act(body, result, "Created", f"created {kind} {name}", "create", record=f"{kind}Created")
                continue
            paths = ", ".join(".".join(str(p) for p in path) for path in drift.changed)
            if kind == "StatefulSet" and live is not None and live["spec"].get("replicas") != plan.replicas:
                reason = "ScalingUp" if plan.replicas > int(live["spec"].get("replicas") or 0) else "ScalingDown"
                self._act(
                    body, result, reason, f"StatefulSet {name} replicas {live['spec'].get('replicas')} -> "
                    f"{plan.replicas}: {plan.message}", "scale", record=f"{kind}Scaled",
                )  # fmt: skip
                continue
            self._act(body, result, "Updated", f"updated {kind} {name} ({paths})", "update", record=f"{kind}Updated")
        if not spec.console.enabled:
            self._remove_console(body, ref, result)
        if immutable:
            problems.insert(
                0, ("ImmutableFieldChanged", "cannot change in place (left as is): " + "; ".join(immutable))
            )
        return problems

    def _remove_console(self, body: Mapping[str, Any], ref: manifests.ClusterRef, result: PassResult) -> None:
        """spec.console turned off: its Deployment and Service go (only those this cluster owns)."""
        name = manifests.console_name(ref.name)
        for kind in manifests.CONSOLE_KINDS:
            live = self.api.get(ObjectRef(kind, ref.namespace, name))
            owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
            if not any(owner.get("uid") == ref.uid for owner in owners):
                continue
            if self.api.delete(ObjectRef(kind, ref.namespace, name)):
                self._act(body, result, "Deleted", f"deleted {kind} {name} (console disabled)", "delete")

    def _grow_volumes(
        self,
        body: Mapping[str, Any],
        ref: manifests.ClusterRef,
        spec: ClusterSpec,
        plan: ScaleDecision,
        observed: _Observed,
        current: int | None,
        result: PassResult,
    ) -> _VolumeStep:
        """spec.storage.size grew: patch the brokers' claims, then delete the StatefulSet with propagation
        Orphan (pods and claims stay) for :meth:`_apply_all` to create it with the new claim template (see
        :mod:`gafka_operator.volumes`). A smaller size, or claims the API server will not grow (no
        allowVolumeExpansion, not bound), become a Warning and nothing is replaced."""
        brokers = max(spec.replicas, current or 0)
        # by name (data-NAME-i), not by the template's labels: claims made beforehand for adoption may lack them
        claims = [
            claim
            for pvc in self.api.list(ObjectRef("PersistentVolumeClaim", ref.namespace))
            if (claim := volumes.claim_state(ref.name, pvc)) is not None and claim.broker_id < brokers
        ]
        sts = observed.sts
        if sts is not None and sts["metadata"].get("deletionTimestamp"):
            result.volumes = f"waiting for StatefulSet {ref.name} to be gone before creating it again"
            return _VolumeStep(False, volumes.resize_progress(claims))
        template = volumes.claim_template_size(sts) if sts is not None else None
        replaceable = True
        if sts is not None and template is not None:  # any other change of the template stays ImmutableFieldChanged
            desired = manifests.stateful_set(ref, spec, self.settings.platform, replicas=plan.replicas)
            replaceable = not manifests.desired_vs_actual(volumes.with_claim_size(desired, template), sts).immutable
        steady = plan.kind is ScaleKind.STEADY and current == spec.replicas
        step = volumes.plan_volumes(spec.storage.size, template, claims, steady=steady, replaceable=replaceable)
        if step.refused:
            result.warnings.append((step.action.value, step.message))
            return _VolumeStep(False, volumes.resize_progress(claims))
        if step.action is volumes.VolumeAction.EXPAND:
            by_name = {c.name: c for c in claims}
            grown: list[str] = []
            refused: list[str] = []
            for name in step.claims:
                try:
                    patched = self.api.merge_patch(
                        ObjectRef("PersistentVolumeClaim", ref.namespace, name),
                        {"spec": {"resources": {"requests": {"storage": step.size}}}},
                    )
                except ApiException as error:
                    if error.status == 404:  # gone meanwhile (scaled away with deleteClaim): nothing to grow
                        continue
                    if error.status not in (400, 403, 422):
                        raise
                    refused.append(f"{name}: {_api_message(error)}")
                    continue
                grown.append(name)
                by_name[name] = volumes.claim_state(ref.name, patched) or by_name[name]
            claims = list(by_name.values())
            if grown:
                self._act(
                    body, result, "VolumeExpansion",
                    f"requested {step.size} for claims {', '.join(grown)}; the volumes grow as their StorageClass's "
                    "driver resizes them", "expand", record="PersistentVolumeClaimUpdated",
                )  # fmt: skip
            if refused:
                result.warnings.append(
                    (
                        "VolumeExpansionUnsupported",
                        f"the API server refused to grow claims to {step.size} (their StorageClass needs "
                        "allowVolumeExpansion: true and the claims must be bound); the StatefulSet keeps its claim "
                        "template: " + "; ".join(refused),
                    )
                )
                return _VolumeStep(False, volumes.resize_progress(claims))
            result.volumes = step.message
        if step.replace and sts is not None:
            try:  # only the StatefulSet observed with the old template (uid precondition)
                self.api.delete(
                    ObjectRef("StatefulSet", ref.namespace, ref.name), uid=sts["metadata"]["uid"], propagation="Orphan"
                )
            except ApiException as error:
                if error.status != 409:
                    raise
            else:
                self._act(
                    body, result, "ReplacingStatefulSet",
                    f"deleted StatefulSet {ref.name} keeping its pods and claims (propagationPolicy Orphan), to create "
                    f"it again with claim size {step.size} (was {template}); the brokers keep running",
                    "replace", record="StatefulSetOrphaned",
                )  # fmt: skip
                result.volumes = f"recreating StatefulSet {ref.name} with claim size {step.size}"
                return _VolumeStep(True, volumes.resize_progress(claims))
        if step.action is volumes.VolumeAction.WAIT:
            result.volumes = step.message
        return _VolumeStep(False, volumes.resize_progress(claims))

    def _storage_conditions(
        self, body: Mapping[str, Any], old: Mapping[str, Any], progress: tuple[str, str] | None
    ) -> list[Condition]:
        """StorageResizing while a claim's volume is smaller than it asks for (reported, never waited for:
        readiness does not depend on it), with an Event when it starts, changes stage, and ends."""
        before = condition(old.get("conditions"), "StorageResizing")
        if progress is None:
            if before is not None and before.get("status") == "True":
                self.emit(body, "Normal", "VolumesResized", "every broker volume has the size its claim requests")
            return []
        reason, message = progress
        if before is None or before.get("status") != "True" or before.get("reason") != reason:
            self.emit(body, "Normal", "VolumesResizing", f"{reason}: {message}")
        return [Condition("StorageResizing", True, reason, message)]

    async def _fence_lost(self, pods: Sequence[PodState], now: dt.datetime) -> None:
        grace = dt.timedelta(seconds=self.settings.not_ready_grace_s)
        self._due = None
        self._fenced = {episode for episode in self._fenced if episode[0] in {p.uid for p in pods}}
        for pod in pods:
            reason = fence_reason(pod, now, grace)
            since = pod.ready_changed or pod.created or now
            if reason is not None:
                await self.fence(pod.broker_id, reason, (pod.uid, f"{reason}@{since.isoformat()}"))
            elif not pod.ready and not pod.deleting:
                due = since + grace
                self._due = due if self._due is None else min(self._due, due)

    async def _autoscale(
        self,
        body: Mapping[str, Any],
        spec: ClusterSpec,
        steady: bool,
        hosted: HostedController | None,
        result: PassResult,
    ) -> None:
        """spec.autoscaling: sample the brokers' counters, and set spec.replicas (the /scale subresource) when the
        stabilized recommendation differs (see :mod:`gafka_operator.autoscaling`). Stands down while a
        HorizontalPodAutoscaler targets the cluster: one writer of spec.replicas, never two undoing each other."""
        competitors = await self._competing_autoscalers(body, spec)
        if competitors:
            self._forget_autoscaling()
            result.warnings.append(
                (
                    "AutoscalerConflict",
                    f"HorizontalPodAutoscaler {', '.join(competitors)} scales this cluster: spec.autoscaling is "
                    "ignored while it does (delete one of the two)",
                )
            )
            return
        await self._autoscale_step(body, spec, steady, hosted, result)
        if self._cpu_unmeasured:  # between two measurements too, or the Warning condition would flap
            result.warnings.append(
                (
                    "AutoscalingNoCPUMetric",
                    f"the brokers' /metrics have no {autoscaling.CPU_COUNTER} (prometheus_client's process collector, "
                    "Linux only): targetCPUUtilization cannot be measured, so the cluster is not autoscaled",
                )
            )

    def _forget_autoscaling(self) -> None:
        """The built-in autoscaler is off (disabled, or standing down): its samples and recommendations start over."""
        self._samples, self._recommendations, self._cpu_unmeasured = {}, [], False

    async def _competing_autoscalers(self, body: Mapping[str, Any], spec: ClusterSpec) -> list[str]:
        """The HPAs targeting the cluster, listed at most every ``autoscale_every_s`` and only while
        spec.autoscaling is enabled (the Warning condition they cause posts its own Event)."""
        if not spec.autoscaling.enabled:
            self._competitors = None
            return []
        clock = time.monotonic()
        if self._competitors is not None and clock - self._competitors[0] < self.settings.autoscale_every_s:
            return self._competitors[1]
        meta = body["metadata"]
        try:
            hpas = await asyncio.to_thread(self.api.list, ObjectRef("HorizontalPodAutoscaler", meta["namespace"]))
        except ApiException as error:  # e.g. RBAC without HPAs: the built-in autoscaler goes on as before
            logger.warning("event=hpa_list_failed namespace=%s cluster=%s status=%s", *self.key, error.status)
            hpas = []
        names = autoscaling.competing_autoscalers(hpas, API_GROUP, str(meta["name"]))
        self._competitors = (clock, names)
        return names

    async def _autoscale_step(
        self,
        body: Mapping[str, Any],
        spec: ClusterSpec,
        steady: bool,
        hosted: HostedController | None,
        result: PassResult,
    ) -> None:
        """One sample of a steady cluster every ``autoscale_every_s``; a scale when two samples ask for it."""
        auto = spec.autoscaling
        if not auto.enabled:
            self._forget_autoscaling()
            return
        request: float | None = None
        if auto.target_cpu_utilization is None:
            self._cpu_unmeasured = False
        else:
            try:
                request = autoscaling.cpu_request(spec.resources)
            except ValueError as exc:  # a utilisation needs a request: say so rather than guess
                result.warnings.append(("AutoscalingNoCPURequest", str(exc)))
                self._samples, self._cpu_unmeasured = {}, False
                return
        if not steady or hosted is None:
            self._samples = {}  # rates across a scale or a restart mean nothing: start over once steady
            return
        clock = time.monotonic()
        if self._samples and clock - max(s.at for s in self._samples.values()) < self.settings.autoscale_every_s:
            return
        metadata = await asyncio.to_thread(hosted.controller.metadata)
        brokers = {b: info for b, info in metadata.brokers.items() if b < spec.replicas and not info.fenced}
        samples = await self._scrape(brokers)
        rate = autoscaling.throughput(self._samples, samples)
        cpu = autoscaling.cpu_utilization(self._samples, samples, request) if request is not None else None
        self._samples = samples
        if rate is None:
            return
        self._cpu_unmeasured = cpu is not None and not cpu
        if self._cpu_unmeasured:  # throughput alone might scale down brokers short of CPU: wait for the metric
            return
        recommended = autoscaling.recommend(
            auto, rate, cpu=cpu, replicas=spec.replicas, floor=max_replication_factor(metadata)
        )
        target, self._recommendations = autoscaling.stabilize(
            self._recommendations, self.clock(), auto.stabilization_window_seconds, spec.replicas, recommended
        )
        if target == spec.replicas:
            return
        meta = body["metadata"]
        await asyncio.to_thread(
            self.api.merge_patch,
            ObjectRef("GafkaCluster", meta["namespace"], meta["name"]),
            {"spec": {"replicas": target}},
            "scale",
        )
        self._samples = {}
        why = autoscaling.explain(recommended, auto, sorted(samples), bytes_per_second=rate, cpu=cpu)
        self._act(body, result, "Autoscaled", f"spec.replicas {spec.replicas} -> {target} ({why})", "autoscale")

    async def _scrape(self, brokers: Mapping[int, BrokerInfo]) -> dict[int, autoscaling.Sample]:
        """Each broker's byte and CPU counters from its /metrics (a broker that does not answer is left out)."""

        async def one(client: httpx.AsyncClient, broker: BrokerInfo) -> tuple[int, autoscaling.Sample] | None:
            try:
                response = await client.get(f"{broker.url.rstrip('/')}/metrics")
                response.raise_for_status()
                sample = autoscaling.parse_sample(response.text, time.monotonic(), broker.incarnation)
            except (httpx.HTTPError, ValueError) as exc:
                logger.debug("event=scrape_failed broker=%d url=%s error=%r", broker.broker_id, broker.url, exc)
                return None
            return broker.broker_id, sample

        async with httpx.AsyncClient(timeout=3.0) as client:
            found = await asyncio.gather(*(one(client, broker) for broker in brokers.values()))
        return dict(item for item in found if item is not None)

    def _copy_racks(
        self, spec: ClusterSpec, raw_pods: Sequence[Mapping[str, Any]], result: PassResult
    ) -> dict[str, str]:
        """``gafka.dev/rack`` on each scheduled broker pod: its node's value of spec.rack.topologyKey, or empty
        (no rack, and a Warning condition naming the nodes) when the node has no such label."""
        racks: dict[str, str] = {}
        unlabelled: set[str] = set()
        key = spec.rack_topology_key
        for pod in raw_pods:
            meta = pod.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            have = annotations.get(manifests.RACK_ANNOTATION)
            source = annotations.get(manifests.RACK_SOURCE_ANNOTATION)
            node_name = (pod.get("spec") or {}).get("nodeName")
            if source == MISSING_LABEL:
                unlabelled.add(str(node_name))
                continue
            if have and source:
                racks[str(meta.get("name"))] = str(have)
                continue
            if not key or not node_name or not self.settings.rack_awareness or meta.get("deletionTimestamp"):
                continue
            node = self.api.get(ObjectRef("Node", None, node_name))
            rack = str(((node or {}).get("metadata", {}).get("labels") or {}).get(key) or have or "")
            self.api.merge_patch(
                ObjectRef("Pod", meta.get("namespace"), meta.get("name")),
                {
                    "metadata": {
                        "annotations": {
                            manifests.RACK_ANNOTATION: rack,
                            manifests.RACK_SOURCE_ANNOTATION: "node-label" if rack else MISSING_LABEL,
                        }
                    }
                },
            )
            if rack:
                racks[str(meta.get("name"))] = rack
            else:
                unlabelled.add(str(node_name))
            result.actions.append("rack")
        if unlabelled:
            result.warnings.append(
                (
                    "RackLabelMissing",
                    f"node(s) {', '.join(sorted(unlabelled))} have no label {key}: their brokers run without a "
                    "rack, so replicas are not spread by rack there",
                )
            )
        return racks

    def _conditions(
        self,
        spec: ClusterSpec,
        plan: ScaleDecision,
        roll_message: str,
        ready: int,
        current: int | None,
        metadata: ClusterMetadata | None,
        apply_problems: Sequence[tuple[str, str]],
        controller_problem: str | None,
        scale_error: str | None,
        result: PassResult,
    ) -> list[Condition]:
        desired = spec.replicas
        conditions: list[Condition] = []
        brokers_ready = ready >= desired and current == desired
        conditions.append(
            Condition("Ready", True, "BrokersReady", f"{ready}/{desired} brokers ready")
            if brokers_ready
            else Condition("Ready", False, "BrokersNotReady", f"{ready}/{desired} brokers ready")
        )
        created = any(a.endswith("Created") for a in result.actions)
        if created:
            reconciling = Condition("Reconciling", True, "Creating", "creating the cluster's objects")
        elif plan.in_progress:
            reconciling = Condition("Reconciling", True, plan.kind.value, plan.message)
        elif roll_message:
            reconciling = Condition("Reconciling", True, "RollingRestart", roll_message)
        elif result.volumes:
            reconciling = Condition("Reconciling", True, "ExpandingVolumes", result.volumes)
        elif any(a.endswith("Updated") for a in result.actions):
            reconciling = Condition("Reconciling", True, "Updating", "updated the cluster's objects")
        elif not brokers_ready:
            reconciling = Condition("Reconciling", True, "WaitingForBrokers", f"{ready}/{desired} brokers ready")
        elif controller_problem is not None and self.is_active():
            reconciling = Condition("Reconciling", True, "WaitingForController", controller_problem)
        else:
            reconciling = Condition("Reconciling", False, "Reconciled", "")
        conditions.append(reconciling)

        problems: list[tuple[str, str]] = []
        if controller_problem is not None and self.is_active():
            problems.append(("ForeignMetadata", controller_problem))
        problems += apply_problems
        if scale_error is not None:
            problems.append(("ScaleStepFailed", scale_error))
        if metadata is not None:
            offline = offline_partitions(metadata)
            urp = under_replicated_partitions(metadata)
            if offline:
                problems.append(("OfflinePartitions", f"{offline} partitions have no leader"))
            if urp:
                problems.append(("UnderReplicatedPartitions", f"{urp} partitions are under-replicated"))
        if problems:
            conditions.append(Condition("Degraded", True, problems[0][0], "; ".join(m for _, m in problems)))
        else:
            conditions.append(Condition("Degraded", False, "AsExpected", ""))
        if plan.kind is ScaleKind.REFUSE:
            conditions.append(Condition("Warning", True, "ScaleDownRefused", plan.message))
        elif result.warnings:
            conditions.append(Condition("Warning", True, result.warnings[0][0], result.warnings[0][1]))
        return conditions

    async def _write_status(
        self, body: Mapping[str, Any], old: Mapping[str, Any], status: dict[str, Any], result: PassResult
    ) -> None:
        result.status = status
        warning_before = condition(old.get("conditions"), "Warning")
        warning_now = condition(status.get("conditions"), "Warning")
        if warning_now is not None and (
            warning_before is None or warning_before.get("message") != warning_now.get("message")
        ):
            self.emit(body, "Warning", str(warning_now.get("reason")), str(warning_now.get("message")))
        degraded_before = condition(old.get("conditions"), "Degraded")
        degraded_now = condition(status.get("conditions"), "Degraded")
        counts_only = degraded_now is not None and degraded_now.get("reason") in _COUNTING_REASONS
        if (
            degraded_now is not None
            and degraded_now.get("status") == "True"
            and (
                degraded_before is None
                or degraded_before.get("status") != "True"
                or degraded_before.get("reason") != degraded_now.get("reason")
                or (not counts_only and degraded_before.get("message") != degraded_now.get("message"))
            )
        ):
            self.emit(body, "Warning", str(degraded_now.get("reason")), str(degraded_now.get("message")))
        seen: Mapping[str, Any] = body.get("status") or {}
        if all(old.get(k) == v and seen.get(k) == v for k, v in status.items()):
            return
        meta = body["metadata"]
        written = await asyncio.to_thread(
            self.api.merge_patch,
            ObjectRef("GafkaCluster", meta["namespace"], meta["name"]),
            {"status": status},
            "status",
        )
        self._written = (str(meta.get("uid")), dict(written.get("status") or status))

    def _act(
        self, body: Mapping[str, Any], result: PassResult, reason: str, message: str, action: str, *, record: str = ""
    ) -> None:
        result.actions.append(record or reason)
        self.metrics.actions.labels(action).inc()
        self.emit(body, "Normal", reason, message)


def _api_message(error: ApiException) -> str:
    """The API server's message in an error (its Status body), else the HTTP status."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"HTTP {error.status} {error.reason}")


def _orphaned_replicas(pods: Sequence[PodState]) -> int | None:
    """The size broker pods show while their StatefulSet is gone (it is replaced for a new claim template):
    recreated at that size, a scale-down in between still drains first. None when there are no pods."""
    alive = [p.broker_id for p in pods if not p.deleting]
    return max(alive) + 1 if alive else None


def _sts_observed(sts: Mapping[str, Any] | None) -> bool:
    if sts is None:
        return False
    observed = int((sts.get("status") or {}).get("observedGeneration") or 0)
    return observed >= int((sts.get("metadata") or {}).get("generation") or 0)


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf's bodies are live read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
