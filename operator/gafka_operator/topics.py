"""GafkaTopics: created, grown, reconfigured and deleted through their cluster's controller.

A pass (:meth:`TopicReconciler.reconcile`) reads the GafkaTopic's spec, finds its GafkaCluster in the same
namespace and that cluster's controller hosted by this replica, compares the spec with the topic in the
controller's metadata (:func:`~.planning.plan_topic`), performs what differs, and writes the status: conditions,
``topicName``, ``topicId``, ``replicationFactor``, ``partitions[]`` (leader and ISR) and
``underReplicatedPartitions``. It returns whether the topic is settled; the kopf handlers retry soon when it is
not for a passing reason, and a kopf timer refreshes every topic's status periodically anyway.

Deletion (:meth:`TopicReconciler.delete`) deletes the topic; it never blocks when the cluster is gone or is
being deleted itself (the finalizer is then simply released).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gafka_broker.controller.decisions import ControllerError
from gafka_broker.controller.metadata import ClusterMetadata
from gafka_operator.controllers import ClusterKey, ControllerHost, HostedController, OperatorMetrics
from gafka_operator.kube import ApiException, KubeApi, ObjectRef
from gafka_operator.planning import TopicAction, TopicSpec, TopicSpecError, plan_topic, topic_spec
from gafka_operator.reconcile import Emit
from gafka_operator.status import Condition, merge_conditions, topic_health, topic_partitions

__all__ = ["TOPIC_CONDITIONS", "TopicOutcome", "TopicReconciler"]

logger = logging.getLogger(__name__)

TOPIC_CONDITIONS = ("Ready", "Reconciling", "Degraded")

_TRANSIENT = {"ClusterNotFound", "ControllerUnavailable", "NotEnoughBrokers", "ControllerError"}


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    settled: bool
    reason: str
    message: str = ""

    @property
    def retry(self) -> bool:
        """Worth retrying soon (the cluster or its brokers may appear), unlike a spec that needs a user."""
        return not self.settled and self.reason in _TRANSIENT


class TopicReconciler:
    def __init__(
        self,
        api: KubeApi,
        host: ControllerHost,
        *,
        is_active: Callable[[], bool],
        emit: Emit,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.api = api
        self.host = host
        self.is_active = is_active
        self.emit = emit
        self.metrics = metrics or host.metrics
        self.clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _lock(self, body: Mapping[str, Any]) -> asyncio.Lock:
        meta = body["metadata"]
        return self._locks.setdefault((meta["namespace"], meta["name"]), asyncio.Lock())

    def forget(self, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        self._locks.pop((meta["namespace"], meta["name"]), None)

    # -- create / update / resync --------------------------------------------------------------------
    async def reconcile(self, body: Mapping[str, Any]) -> TopicOutcome:
        async with self._lock(body):
            outcome, status = await self._pass(body)
            await self._write_status(body, status, outcome)
            self.metrics.reconciles.labels("GafkaTopic", "ok" if outcome.settled else outcome.reason).inc()
            return outcome

    async def _pass(self, body: Mapping[str, Any]) -> tuple[TopicOutcome, dict[str, Any]]:
        meta = body["metadata"]
        try:
            spec = topic_spec(body.get("spec") or {}, meta["name"])
        except TopicSpecError as exc:
            return TopicOutcome(False, "InvalidSpec", str(exc)), {}
        status: dict[str, Any] = {"topicName": spec.name, "replicationFactor": spec.replication_factor}
        found = await self._controller(meta["namespace"], spec)
        if isinstance(found, TopicOutcome):
            return found, status
        hosted = found
        metadata = await asyncio.to_thread(hosted.controller.metadata)
        plan = plan_topic(spec, metadata.topics.get(spec.name))
        if plan.conflict is not None:
            return TopicOutcome(False, plan.conflict, plan.message), self._describe(status, metadata, spec.name)
        try:
            metadata = await self._act(body, hosted, spec, plan.actions) or metadata
        except ControllerError as exc:
            reason = "NotEnoughBrokers" if exc.code == "INVALID_REPLICATION_FACTOR" else "ControllerError"
            outcome = TopicOutcome(False, reason, f"{exc.code}: {exc.message}")
            return outcome, self._describe(status, metadata, spec.name)
        except ApiException as exc:  # the metadata could not be stored (API server away, namespace terminating)
            outcome = TopicOutcome(False, "ControllerError", f"storing the metadata failed: HTTP {exc.status}")
            return outcome, self._describe(status, metadata, spec.name)
        return TopicOutcome(True, "TopicReady", f"topic {spec.name} is ready"), self._describe(
            status, metadata, spec.name
        )

    async def _controller(self, namespace: str, spec: TopicSpec) -> HostedController | TopicOutcome:
        cluster = await asyncio.to_thread(self.api.get, ObjectRef("GafkaCluster", namespace, spec.cluster))
        if cluster is None:
            return TopicOutcome(False, "ClusterNotFound", f"GafkaCluster {spec.cluster} does not exist in {namespace}")
        key: ClusterKey = (namespace, spec.cluster)
        hosted = self.host.get(key) if self.is_active() else None
        if hosted is None:
            return TopicOutcome(
                False, "ControllerUnavailable", f"waiting for the controller of GafkaCluster {spec.cluster}"
            )
        return hosted

    async def _act(
        self, body: Mapping[str, Any], hosted: HostedController, spec: TopicSpec, actions: tuple[TopicAction, ...]
    ) -> ClusterMetadata | None:
        controller = hosted.controller
        metadata: ClusterMetadata | None = None
        for action in actions:
            if action is TopicAction.CREATE:
                metadata = await asyncio.to_thread(
                    controller.create_topic, spec.name, spec.partitions, spec.replication_factor, spec.configs
                )
                message = (
                    f"created topic {spec.name} in cluster {spec.cluster}: {spec.partitions} partitions, "
                    f"replication factor {spec.replication_factor}"
                )
            elif action is TopicAction.ADD_PARTITIONS:
                metadata = await asyncio.to_thread(controller.add_partitions, spec.name, spec.partitions)
                message = f"topic {spec.name} grew to {spec.partitions} partitions"
            else:
                metadata = await asyncio.to_thread(controller.alter_configs, spec.name, spec.configs)
                message = f"topic {spec.name} config set to {dict(spec.configs) or '{}'}"
            self.metrics.actions.labels(f"topic{action.value}").inc()
            logger.info(
                "event=topic_%s namespace=%s topic=%s", action.name.lower(), body["metadata"]["namespace"], spec.name
            )
            self.emit(body, "Normal", f"Topic{action.value}", message)
        return metadata

    @staticmethod
    def _describe(status: dict[str, Any], metadata: ClusterMetadata, name: str) -> dict[str, Any]:
        topic = metadata.topics.get(name)
        if topic is None:
            return status
        urp, _ = topic_health(metadata, name)
        return status | {
            "topicId": topic.topic_id,
            "replicationFactor": topic.replication_factor,
            "partitions": topic_partitions(topic),
            "underReplicatedPartitions": urp,
        }

    async def _write_status(self, body: Mapping[str, Any], fields: dict[str, Any], outcome: TopicOutcome) -> None:
        meta = body["metadata"]
        generation = int(meta.get("generation") or 0)
        old: Mapping[str, Any] = body.get("status") or {}
        urp = int(fields.get("underReplicatedPartitions") or 0)
        offline = sum(1 for p in fields.get("partitions") or [] if p["leader"] < 0)
        conditions = [
            Condition("Ready", outcome.settled, outcome.reason, outcome.message),
            Condition("Reconciling", False, "Reconciled", "")
            if outcome.settled or not outcome.retry
            else Condition("Reconciling", True, outcome.reason, outcome.message),
        ]
        if offline:
            conditions.append(Condition("Degraded", True, "OfflinePartitions", f"{offline} partitions have no leader"))
        elif urp:
            conditions.append(Condition("Degraded", True, "UnderReplicatedPartitions", f"{urp} under-replicated"))
        else:
            conditions.append(Condition("Degraded", False, "AsExpected", ""))
        status = fields | {
            "observedGeneration": generation,
            "conditions": merge_conditions(
                old.get("conditions"), conditions, now=self.clock(), generation=generation, managed=TOPIC_CONDITIONS
            ),
        }
        ready_before = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), None)
        reason_changed = ready_before is None or ready_before.get("reason") != outcome.reason
        if not outcome.settled and outcome.reason != "ControllerUnavailable" and reason_changed:
            self.emit(body, "Warning", outcome.reason, outcome.message)
        if all(old.get(k) == v for k, v in status.items()):
            return
        await asyncio.to_thread(
            self.api.merge_patch, ObjectRef("GafkaTopic", meta["namespace"], meta["name"]), {"status": status}, "status"
        )

    # -- delete --------------------------------------------------------------------------------------
    async def delete(self, body: Mapping[str, Any]) -> TopicOutcome:
        """Delete the topic. Settled (the finalizer may go) when it is gone, was never valid, or its cluster is
        gone or going; not settled only while the cluster exists but its controller is not loaded here."""
        async with self._lock(body):
            meta = body["metadata"]
            try:
                spec = topic_spec(body.get("spec") or {}, meta["name"])
            except TopicSpecError:
                return TopicOutcome(True, "InvalidSpec")
            cluster = await asyncio.to_thread(self.api.get, ObjectRef("GafkaCluster", meta["namespace"], spec.cluster))
            if cluster is None or cluster["metadata"].get("deletionTimestamp"):
                return TopicOutcome(True, "ClusterNotFound", f"GafkaCluster {spec.cluster} is gone")
            found = await self._controller(meta["namespace"], spec)
            if isinstance(found, TopicOutcome):
                return found
            try:
                await asyncio.to_thread(found.controller.delete_topic, spec.name)
            except ControllerError as exc:
                if exc.code != "UNKNOWN_TOPIC_OR_PARTITION":
                    return TopicOutcome(False, "ControllerError", f"{exc.code}: {exc.message}")
                return TopicOutcome(True, "TopicDeleted", f"topic {spec.name} did not exist")
            except ApiException as exc:
                return TopicOutcome(False, "ControllerError", f"storing the metadata failed: HTTP {exc.status}")
            self.metrics.actions.labels("topicDelete").inc()
            logger.info("event=topic_deleted namespace=%s topic=%s", meta["namespace"], spec.name)
            self.emit(body, "Normal", "TopicDeleted", f"deleted topic {spec.name} from cluster {spec.cluster}")
            return TopicOutcome(True, "TopicDeleted")
