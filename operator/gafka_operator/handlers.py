"""gafka-operator's kopf handlers: ``kopf run --module=gafka_operator.handlers``.

Only wiring lives here; the work is in :mod:`.reconcile` (clusters), :mod:`.topics` (topics), :mod:`.planning`
(decisions), :mod:`.controllers` (the hosted controllers and their HTTP server) and :mod:`.leadership`
(which replica is active).

- **startup / cleanup**: build the :class:`~.runtime.OperatorRuntime` from the environment, start the
  controllers' HTTP server on kopf's event loop and the leadership loop; stop them (releasing the Lease) on exit.
- **GafkaCluster** create / update / resume: one reconcile pass at once; a **daemon** per cluster runs a pass
  every ``GAFKA_OPERATOR_RESYNC_SECONDS`` and whenever a broker pod changes (drift, scaling, rolling restarts,
  fencing, status). kopf stops the daemons while this replica is paused by peering, and the daemon unloads
  the cluster's controller then.
- **broker pods** (any event): a deleted, failed or overdue pod gets its broker fenced at once; the cluster's
  daemon is woken. So it is by any event of a broker StatefulSet (its status, or an edit to undo).
- **GafkaTopic** create / update / resume, a **timer** refreshing the status, and **delete** (with kopf's
  finalizer, which never blocks when the cluster is gone).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf

from gafka_operator import API_GROUP, API_VERSION, CLUSTER_PLURAL, TOPIC_PLURAL
from gafka_operator.kube import KubeApi, new_api_client
from gafka_operator.leadership import PeeringSettings
from gafka_operator.planning import fence_reason, pod_state
from gafka_operator.runtime import OperatorConfig, OperatorRuntime, default_identity

__all__ = [
    "broker_pod_event",
    "broker_statefulset_event",
    "cleanup",
    "cluster_changed",
    "cluster_daemon",
    "startup",
    "topic_changed",
    "topic_deleted",
    "topic_resync",
]

logger = logging.getLogger(__name__)

CLUSTER = (API_GROUP, API_VERSION, CLUSTER_PLURAL)
TOPIC = (API_GROUP, API_VERSION, TOPIC_PLURAL)
BROKER_POD_LABELS = {"app.kubernetes.io/name": "gafka", "app.kubernetes.io/component": "broker"}
FINALIZER = "gafka.dev/finalizer"
TOPIC_RESYNC_S = float(os.environ.get("GAFKA_OPERATOR_TOPIC_RESYNC_SECONDS") or 30)
TOPIC_RETRY_S = 5.0

# kopf takes its peering identity from POD_ID when the operator starts (after this module is imported); fixing
# it here lets the leadership loop evaluate the peering object exactly as kopf does, for the same identity.
os.environ.setdefault("POD_ID", default_identity())


_QUIET = ("'broker_pod_event'", "'broker_statefulset_event'", "'topic_resync'")


class _QuietWatchers(logging.Filter):
    """kopf logs every successful handler at INFO; for the pod and StatefulSet watchers and the topic timer
    (many runs a minute, nothing done in most) that is noise: only their warnings and errors are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = str(record.msg)
        return not any(name in message for name in _QUIET)


def _runtime(memo: Any) -> OperatorRuntime:
    runtime = memo.get("gafka")
    if not isinstance(runtime, OperatorRuntime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


def _emit(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event through kopf's poster (ordered, retried); outside a handler's context, only logged."""
    try:
        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:1024])
    except LookupError:
        logger.info("event=k8s_event_dropped reason=%s message=%r", reason, message)


# ------------------------------------------------------------------------------------------------ lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    logging.getLogger("kopf.objects").addFilter(_QuietWatchers())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per scraped /metrics otherwise
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="gafka.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="gafka.dev", key="last-handled-configuration"
    )
    settings.posting.loggers = False  # only the explicit Events of every action, not log lines
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # a request that hangs (a dropped connection the kernel never reports) is retried after 30 s, not kopf's
    # default 5 minutes: at start-up one stuck discovery request would otherwise hold every handler back
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    try:
        config = OperatorConfig.from_env(os.environ)
    except ValueError as exc:  # a deployment mistake: retrying does not help, exit with the reason
        raise kopf.PermanentError(f"gafka-operator cannot start: {exc}") from None
    peering = PeeringSettings(
        name=settings.peering.name,
        priority=settings.peering.priority,
        standalone=settings.peering.standalone,
        namespaces=() if settings.peering.clusterwide else config.watch_namespaces,
    )
    runtime = OperatorRuntime(
        config, KubeApi(new_api_client()), identity=os.environ["POD_ID"], peering=peering, emit=_emit
    )
    try:
        await runtime.start()
    except OSError as exc:
        raise kopf.PermanentError(f"cannot serve the controllers on {config.listen}: {exc}") from None
    memo["gafka"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    runtime = memo.get("gafka")
    if isinstance(runtime, OperatorRuntime):
        await runtime.stop()


# ------------------------------------------------------------------------------------------------- clusters


@kopf.on.resume(*CLUSTER)
@kopf.on.create(*CLUSTER)
@kopf.on.update(*CLUSTER)
async def cluster_changed(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await _runtime(memo).cluster((namespace or "", name)).reconcile(body)


@kopf.daemon(*CLUSTER, cancellation_timeout=10.0)
async def cluster_daemon(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    await _runtime(memo).cluster((namespace or "", name)).run_forever(body)


@kopf.on.event("", "v1", "pods", labels=BROKER_POD_LABELS)
async def broker_pod_event(
    event: kopf.RawEvent, body: kopf.Body, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    runtime = memo.get("gafka")
    cluster = labels.get("app.kubernetes.io/instance")
    if not isinstance(runtime, OperatorRuntime) or not cluster or namespace is None:
        return
    reconciler = runtime.clusters.get((namespace, cluster))
    state = pod_state(body)
    if reconciler is None or state is None:
        return
    if event.get("type") == "DELETED":
        await reconciler.fence(state.broker_id, "PodDeleted", (state.uid, "PodDeleted"))
    else:
        grace = dt.timedelta(seconds=runtime.config.reconcile.not_ready_grace_s)
        reason = fence_reason(state, dt.datetime.now(dt.UTC), grace)
        if reason in ("PodFailed", "PodTerminationOverdue"):
            await reconciler.fence(state.broker_id, reason, (state.uid, reason))
    reconciler.wake()


@kopf.on.event("apps", "v1", "statefulsets", labels=BROKER_POD_LABELS)
async def broker_statefulset_event(namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    """The StatefulSet's status moved (readyReplicas, updateRevision) or someone edited it: a pass now."""
    runtime = memo.get("gafka")
    cluster = labels.get("app.kubernetes.io/instance")
    if isinstance(runtime, OperatorRuntime) and cluster and namespace is not None:
        reconciler = runtime.clusters.get((namespace, cluster))
        if reconciler is not None:
            reconciler.wake()


# --------------------------------------------------------------------------------------------------- topics


@kopf.on.resume(*TOPIC)
@kopf.on.create(*TOPIC)
@kopf.on.update(*TOPIC)
async def topic_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    outcome = await _runtime(memo).topics.reconcile(body)
    if outcome.retry and outcome.reason != "ClusterNotFound":  # a missing cluster is re-checked by the timer
        raise kopf.TemporaryError(outcome.message, delay=TOPIC_RETRY_S)


@kopf.timer(*TOPIC, interval=TOPIC_RESYNC_S, initial_delay=TOPIC_RESYNC_S)
async def topic_resync(body: kopf.Body, memo: Any, **_: Any) -> None:
    await _runtime(memo).topics.reconcile(body)


@kopf.on.delete(*TOPIC)
async def topic_deleted(body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    outcome = await runtime.topics.delete(body)
    if not outcome.settled:
        raise kopf.TemporaryError(outcome.message, delay=TOPIC_RETRY_S)
    runtime.topics.forget(body)
