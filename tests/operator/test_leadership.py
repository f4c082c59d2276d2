"""Which operator replica is active: kopf's peering rule, the Lease steps, and the loop over a fake API."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fakekube import FakeKubeApi

from gafka_operator.kube import ObjectRef
from gafka_operator.leadership import (
    Leadership,
    LeaseAction,
    LeaseSettings,
    PeeringSettings,
    lease_body,
    lease_step,
    micro_time,
    peering_active,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _peer(priority: int, seen_ago_s: float = 0, lifetime: int = 60) -> dict[str, Any]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - dt.timedelta(seconds=seen_ago_s)).isoformat(),
    }


def test_peering_verdict_follows_kopf() -> None:
    assert peering_active(None, "me", 10, NOW)
    assert peering_active({"me": _peer(10)}, "me", 10, NOW)
    assert peering_active({"me": _peer(10), "other": _peer(5)}, "me", 10, NOW)
    assert not peering_active({"other": _peer(11)}, "me", 10, NOW)
    assert not peering_active({"other": _peer(10)}, "me", 10, NOW), "equal priorities pause both"
    assert peering_active({"other": _peer(99, seen_ago_s=61)}, "me", 10, NOW), "dead peers do not count"
    assert not peering_active({"other": {"priority": 99}}, "me", 10, NOW), "no lastseen: alive"
    assert peering_active({"other": _peer(99, lifetime=0)}, "me", 10, NOW), "lifetime 0: a peer that left"


def _lease(holder: str | None, renewed_ago_s: float, duration: int = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "leaseDurationSeconds": duration,
        "renewTime": micro_time(NOW - dt.timedelta(seconds=renewed_ago_s)),
    }
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"metadata": {"name": "l", "namespace": "ns", "resourceVersion": "7"}, "spec": spec}


def test_lease_steps() -> None:
    assert lease_step(None, "me", NOW, wanted=True) is LeaseAction.CREATE
    assert lease_step(_lease("me", 1), "me", NOW, wanted=True) is LeaseAction.RENEW
    assert lease_step(_lease("other", 1), "me", NOW, wanted=True) is LeaseAction.WAIT
    assert lease_step(_lease("other", 16), "me", NOW, wanted=True) is LeaseAction.ACQUIRE
    assert lease_step(_lease(None, 0), "me", NOW, wanted=True) is LeaseAction.ACQUIRE
    assert lease_step(_lease("me", 1), "me", NOW, wanted=False) is LeaseAction.RELEASE
    assert lease_step(_lease("other", 1), "me", NOW, wanted=False) is LeaseAction.NONE
    assert lease_step(None, "me", NOW, wanted=False) is LeaseAction.NONE


def test_lease_bodies() -> None:
    ref = ObjectRef("Lease", "ns", "l")
    acquired = lease_body(_lease("other", 20), ref, "me", NOW, LeaseAction.ACQUIRE, 15)
    assert acquired["metadata"]["resourceVersion"] == "7"  # compare-and-set on what was read
    assert acquired["spec"]["holderIdentity"] == "me" and acquired["spec"]["leaseTransitions"] == 1
    assert acquired["spec"]["acquireTime"] == acquired["spec"]["renewTime"] == "2026-01-01T12:00:00.000000Z"
    released = lease_body(_lease("me", 1), ref, "me", NOW, LeaseAction.RELEASE, 15)
    assert "holderIdentity" not in released["spec"] and released["spec"]["leaseDurationSeconds"] == 1
    created = lease_body(None, ref, "me", NOW, LeaseAction.CREATE, 15)
    assert "resourceVersion" not in created["metadata"] and created["spec"]["leaseTransitions"] == 0


def test_two_replicas_over_one_lease() -> None:
    """Peering says both may run (standalone): the Lease still lets only one be active; a release hands over."""
    api = FakeKubeApi()
    changes: list[tuple[str, bool]] = []
    lease = LeaseSettings(namespace="ops", name="gafka", duration_s=15)

    def replica(name: str) -> Leadership:
        async def changed(active: bool) -> None:
            changes.append((name, active))

        return Leadership(api, name, PeeringSettings("p", 1, standalone=True), lease, changed)  # type: ignore[arg-type]

    async def scenario() -> None:
        a, b = replica("a"), replica("b")
        assert await a.evaluate() is True
        assert await b.evaluate() is False
        assert api.objects[("Lease", "ops", "gafka")]["spec"]["holderIdentity"] == "a"
        assert await a.evaluate() is True  # renew
        await a.release()
        assert a.active is False
        assert await b.evaluate() is True
        assert api.objects[("Lease", "ops", "gafka")]["spec"]["leaseTransitions"] == 1

    asyncio.run(scenario())
    assert changes == [("a", True), ("b", False), ("a", False), ("b", True)]


def test_peering_pauses_and_releases() -> None:
    api = FakeKubeApi()
    lease = LeaseSettings(namespace="ops", name="gafka", duration_s=15)
    peering = PeeringSettings("gafka", 10)
    me = Leadership(api, "me", peering, lease)  # type: ignore[arg-type]
    now = dt.datetime.now(dt.UTC)

    async def scenario() -> None:
        assert await me.evaluate() is True  # no peering object: kopf runs without peering
        api.objects[("ClusterKopfPeering", None, "gafka")] = {
            "metadata": {"name": "gafka", "resourceVersion": "1"},
            "status": {"better": {"priority": 20, "lifetime": 60, "lastseen": now.isoformat()}},
        }
        assert await me.evaluate() is False
        assert "holderIdentity" not in api.objects[("Lease", "ops", "gafka")]["spec"]  # released at once

    asyncio.run(scenario())


def test_namespaced_peering_objects() -> None:
    refs = PeeringSettings("gafka", 1, namespaces=("a", "b")).objects()
    assert refs == [ObjectRef("KopfPeering", "a", "gafka"), ObjectRef("KopfPeering", "b", "gafka")]
    assert PeeringSettings("gafka", 1).objects() == [ObjectRef("ClusterKopfPeering", None, "gafka")]
