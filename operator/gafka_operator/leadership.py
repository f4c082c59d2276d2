"""Which operator replica hosts the controllers: kopf's peering verdict, made exclusive by a Lease.

kopf's peering (``--peering``, ``--priority``) pauses every replica but the one with the highest priority, but
it is no lock: keep-alives come once a minute and a replica only pauses when it *sees* a better peer, so for
a while two replicas can both think they are active (kopf's own docs warn about it). Handling the same
GafkaCluster twice for a moment is harmless (every write is idempotent); running two controllers for the
same cluster is not (brokers would follow two metadata streams). Hence two gates:

1. **Peering** (:func:`peering_active`): the same rule kopf applies to the same peering object (another live
   peer with a higher *or equal* priority pauses us), re-evaluated every few seconds.
2. **Lease** (``coordination.k8s.io/v1``, in the operator's namespace): only a replica that peering says is
   active tries to acquire it, renews it while it stays active, and releases it when it pauses or stops.
   Its holder is the only replica that hosts controllers and whose ``/readyz`` answers 200, so the controller
   Service routes brokers to it alone.

Without a namespace for the Lease (a developer's ``kopf run`` outside a pod) the peering verdict alone decides;
with ``--standalone`` the replica is always active. The pure parts (:func:`peering_active`,
:func:`lease_step`) are unit-tested; :class:`Leadership` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from gafka_operator.kube import ApiException, KubeApi, ObjectRef

__all__ = [
    "Leadership",
    "LeaseAction",
    "LeaseSettings",
    "PeeringSettings",
    "lease_body",
    "lease_step",
    "micro_time",
    "parse_time",
    "peering_active",
]

logger = logging.getLogger(__name__)

_KOPF_DEFAULT_LIFETIME_S = 60


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time as the API server writes it (``Z``, optional fraction); None if absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def micro_time(moment: dt.datetime) -> str:
    """Kubernetes' MicroTime format (Lease renewTime/acquireTime)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------------------------ peering


def peering_active(status: Mapping[str, Any] | None, identity: str, priority: int, now: dt.datetime) -> bool:
    """kopf's rule (``kopf._core.engines.peering.process_peering_event``) on a peering object's status: we are
    paused while another live peer has a priority higher than or equal to ours."""
    for peer, info in (status or {}).items():
        if peer == identity or not isinstance(info, Mapping):
            continue
        lastseen = parse_time(info.get("lastseen")) or now
        lifetime = dt.timedelta(seconds=int(info.get("lifetime", _KOPF_DEFAULT_LIFETIME_S)))
        if lastseen + lifetime <= now:
            continue  # dead: kopf ignores it (and cleans it up)
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


@dataclass(frozen=True, slots=True)
class PeeringSettings:
    """What kopf was started with: ``--peering``, ``--priority``, ``--standalone`` and the watched namespaces."""

    name: str
    priority: int
    standalone: bool = False
    namespaces: Sequence[str] = ()
    """Empty: cluster-wide (a ClusterKopfPeering); else one KopfPeering per namespace, all must agree."""

    def objects(self) -> list[ObjectRef]:
        if self.namespaces:
            return [ObjectRef("KopfPeering", namespace, self.name) for namespace in self.namespaces]
        return [ObjectRef("ClusterKopfPeering", None, self.name)]


# -------------------------------------------------------------------------------------------------- lease


class LeaseAction(Enum):
    CREATE = "create"
    ACQUIRE = "acquire"
    RENEW = "renew"
    RELEASE = "release"
    WAIT = "wait"
    """Someone else holds a valid lease."""
    NONE = "none"


def lease_step(lease: Mapping[str, Any] | None, identity: str, now: dt.datetime, *, wanted: bool) -> LeaseAction:
    """What to do with the Lease, given whether we want to lead (peering says we are active)."""
    spec: Mapping[str, Any] = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity") or None
    if not wanted:
        return LeaseAction.RELEASE if lease is not None and holder == identity else LeaseAction.NONE
    if lease is None:
        return LeaseAction.CREATE
    if holder == identity:
        return LeaseAction.RENEW
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
    if holder is None or renewed is None or renewed + duration <= now:
        return LeaseAction.ACQUIRE
    return LeaseAction.WAIT


def lease_body(
    lease: Mapping[str, Any] | None,
    ref: ObjectRef,
    identity: str,
    now: dt.datetime,
    action: LeaseAction,
    duration_s: int,
) -> dict[str, Any]:
    """The Lease to write for ``action`` (carrying the read resourceVersion: compare-and-set)."""
    old_meta: Mapping[str, Any] = (lease or {}).get("metadata") or {}
    spec: dict[str, Any] = dict((lease or {}).get("spec") or {})
    meta: dict[str, Any] = {"name": ref.name, "namespace": ref.namespace}
    if old_meta.get("resourceVersion"):
        meta["resourceVersion"] = old_meta["resourceVersion"]
    if old_meta.get("labels"):
        meta["labels"] = dict(old_meta["labels"])
    if action in (LeaseAction.CREATE, LeaseAction.ACQUIRE):
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if action is LeaseAction.ACQUIRE else 0)
        spec.update(
            holderIdentity=identity,
            leaseDurationSeconds=duration_s,
            acquireTime=micro_time(now),
            renewTime=micro_time(now),
            leaseTransitions=transitions,
        )
    elif action is LeaseAction.RENEW:
        spec.update(renewTime=micro_time(now), leaseDurationSeconds=duration_s)
    elif action is LeaseAction.RELEASE:
        # client-go's ReleaseOnCancel: an empty holder and a 1 s duration let the next replica take over at once
        spec.pop("holderIdentity", None)
        spec.update(leaseDurationSeconds=1, renewTime=micro_time(now))
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str
    name: str
    duration_s: int = 15
    renew_every_s: float = 5.0
    retry_every_s: float = 2.0


# ------------------------------------------------------------------------------------------------- the loop


class Leadership:
    """Keeps :attr:`active` up to date: peering verdict AND (when configured) the Lease held.

    ``on_change(active)`` is awaited on every change (the controller host unloads every controller when
    this replica stops being active).
    """

    def __init__(
        self,
        api: KubeApi,
        identity: str,
        peering: PeeringSettings,
        lease: LeaseSettings | None,
        on_change: Callable[[bool], Awaitable[None]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.identity = identity
        self.peering = peering
        self.lease = lease
        self.on_change = on_change
        self._clock = clock
        self._peering_ok = peering.standalone
        self._held_until = 0.0
        self._active = False
        self._published: bool | None = None
        self._wake = asyncio.Event()

    @property
    def active(self) -> bool:
        return self._active and (self.lease is None or self._clock() < self._held_until)

    def wake(self) -> None:
        """Re-evaluate now (e.g. a peering object changed)."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: evaluate, publish changes, sleep. Cancel to stop (then call :meth:`release`)."""
        while True:
            await self.evaluate()
            delay = self.lease.renew_every_s if self.lease is not None and self.active else self._retry_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def evaluate(self) -> bool:
        """One round now (peering verdict, Lease), publishing a change; returns :attr:`active`."""
        try:
            await self.step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the API server away: keep what we have until the lease runs out
            logger.warning("event=leadership_check_failed error=%r", exc)
        await self._publish()
        return self.active

    def _retry_delay(self) -> float:
        return self.lease.retry_every_s if self.lease is not None else 2.0

    async def step(self) -> None:
        if not self.peering.standalone:
            self._peering_ok = await asyncio.to_thread(self._read_peering)
        if self.lease is not None:
            await asyncio.to_thread(self._lease_round, self._peering_ok)
        self._active = self._peering_ok

    async def release(self) -> None:
        """Give the Lease up (operator shutdown), so a standby takes over without waiting for it to expire."""
        self._peering_ok = False
        if self.lease is not None and self._held_until > 0:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._lease_round, False)
        self._active = False
        await self._publish()

    # -- I/O -----------------------------------------------------------------------------------------
    def _read_peering(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        for ref in self.peering.objects():
            obj = self.api.get(ref)  # absent: kopf runs without peering there
            if obj is not None and not peering_active(obj.get("status"), self.identity, self.peering.priority, now):
                return False
        return True

    def _lease_round(self, wanted: bool) -> None:
        assert self.lease is not None
        ref = ObjectRef("Lease", self.lease.namespace, self.lease.name)
        started = self._clock()
        current = self.api.get(ref)
        now = dt.datetime.now(dt.UTC)
        action = lease_step(current, self.identity, now, wanted=wanted)
        if action in (LeaseAction.WAIT, LeaseAction.NONE):
            if action is LeaseAction.WAIT:
                self._held_until = 0.0
            return
        body = lease_body(current, ref, self.identity, now, action, self.lease.duration_s)
        try:
            if action is LeaseAction.CREATE:
                self.api.create(body)
            else:
                self.api.replace(body)
        except ApiException as error:
            if error.status in (404, 409):  # somebody else moved first: re-read next round
                self._held_until = 0.0
                return
            raise
        if action is LeaseAction.RELEASE:
            self._held_until = 0.0
            logger.info("event=lease_released lease=%s/%s", ref.namespace, ref.name)
            return
        if action is not LeaseAction.RENEW or self._held_until == 0.0:
            logger.info("event=lease_acquired lease=%s/%s identity=%s", ref.namespace, ref.name, self.identity)
        # counted from before the read: we may have held it for less than the duration, never more
        self._held_until = started + self.lease.duration_s * 0.8

    async def _publish(self) -> None:
        active = self.active
        if active == self._published:
            return
        self._published = active
        logger.info("event=leadership_changed active=%s identity=%s", active, self.identity)
        if self.on_change is not None:
            await self.on_change(active)
