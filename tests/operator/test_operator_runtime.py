"""The operator's in-process parts without a cluster: conditions and status, the controller host and the HTTP app
(routing under /clusters/<ns>/<name>, readyz only when active, metrics), the metadata store over a fake API."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import httpx
import pytest
from fakekube import FakeKubeApi

from gafka_broker.controller.controller import ControllerSettings
from gafka_broker.controller.metadata import BrokerInfo, ClusterMetadata, PartitionState, TopicInfo
from gafka_operator.controllers import ControllerHost, OperatorApp, parse_listen
from gafka_operator.kube import ObjectRef
from gafka_operator.kube_store import ForeignMetadataError
from gafka_operator.planning import PodState
from gafka_operator.status import Condition, broker_statuses, merge_conditions, topic_partitions

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


# ---------------------------------------------------------------------------------------------------- status


def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    first = merge_conditions(
        None,
        [Condition("Ready", False, "BrokersNotReady", "0/3"), Condition("Reconciling", True, "Creating")],
        now=T0,
        generation=1,
    )
    assert [c["type"] for c in first] == ["Ready", "Reconciling"]
    assert first[0] == {
        "type": "Ready",
        "status": "False",
        "reason": "BrokersNotReady",
        "message": "0/3",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 1,
    }
    second = merge_conditions(
        [*first, {"type": "Foreign", "status": "True"}, {"type": "Warning", "status": "True"}],
        [Condition("Ready", False, "BrokersNotReady", "2/3"), Condition("Reconciling", False, "Reconciled")],
        now=T1,
        generation=2,
        managed=("Ready", "Reconciling", "Warning"),
    )
    by_type = {c["type"]: c for c in second}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"  # still False
    assert by_type["Ready"]["message"] == "2/3" and by_type["Ready"]["observedGeneration"] == 2
    assert by_type["Reconciling"]["lastTransitionTime"] == "2026-01-01T12:05:00Z"  # True -> False
    assert "Warning" not in by_type  # ours, no longer asserted: removed
    assert by_type["Foreign"] == {"type": "Foreign", "status": "True"}  # someone else's: kept


def test_broker_statuses_join_pods_and_metadata() -> None:
    metadata = ClusterMetadata(
        cluster_id="c",
        brokers={0: BrokerInfo(0, "http://b0", "r1", fenced=False), 3: BrokerInfo(3, "http://b3", fenced=True)},
        topics={
            "t": TopicInfo(
                "t", "id", {}, (PartitionState((0, 3), 0, 1, (0, 3)), PartitionState((3, 0), -1, 2, (3,))), 2
            )
        },
    )
    pods = [PodState("demo-0", 0, ready=True), PodState("demo-1", 1, ready=False)]
    entries = broker_statuses(2, pods, metadata, {"demo-1": "zone-b"})
    assert entries == [
        {
            "id": 0,
            "pod": "demo-0",
            "ready": True,
            "url": "http://b0",
            "fenced": False,
            "rack": "r1",
            "leaders": 1,
            "replicas": 2,
        },
        {"id": 1, "pod": "demo-1", "ready": False, "rack": "zone-b", "leaders": 0, "replicas": 0},
        {"id": 3, "ready": False, "url": "http://b3", "fenced": True, "leaders": 0, "replicas": 2},
    ]
    assert broker_statuses(1, [], None) == [{"id": 0, "ready": False}]
    assert topic_partitions(metadata.topics["t"])[1] == {
        "partition": 1,
        "leader": -1,
        "leaderEpoch": 2,
        "replicas": [3, 0],
        "isr": [3],
    }


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:9093") == ("0.0.0.0", 9093)
    assert parse_listen("[::]:9093") == ("::", 9093)
    assert parse_listen(":9093") == ("0.0.0.0", 9093)
    with pytest.raises(ValueError, match="host:port"):
        parse_listen("9093")


# ------------------------------------------------------------------------------------- host and HTTP app


async def _call(app: OperatorApp, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://operator") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


def _run(scenario: Callable[[], object]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_the_app_serves_hosted_controllers_only_while_active() -> None:
    api = FakeKubeApi()
    host = ControllerHost(api, tick_ms=50)  # type: ignore[arg-type]
    active = {"now": False}
    app = OperatorApp(host, lambda: active["now"])
    key = ("ns", "demo")

    async def scenario() -> None:
        assert (await _call(app, "GET", "/healthz")).status_code == 200
        standby = await _call(app, "GET", "/readyz")
        assert standby.status_code == 503 and standby.text == "standby\n"
        refused = await _call(app, "GET", "/clusters/ns/demo/v1/controller/metadata")
        assert refused.status_code == 503 and refused.json()["error_code"] == "NOT_CONTROLLER"

        hosted = await host.ensure(
            key, cluster_id="c1", settings=ControllerSettings(), labels={"gafka.dev/cluster": "demo"}, owner=None
        )
        assert (await host.ensure(key, cluster_id="c1", settings=ControllerSettings(), labels={}, owner=None)) is hosted
        stored = api.objects[("ConfigMap", "ns", "demo-metadata")]
        assert stored["data"]["version"] == "1" and stored["metadata"]["labels"] == {"gafka.dev/cluster": "demo"}
        # hosted but on standby: still refused
        assert (await _call(app, "GET", "/clusters/ns/demo/v1/controller/metadata")).status_code == 503

        active["now"] = True
        assert (await _call(app, "GET", "/readyz")).status_code == 200
        registered = await _call(
            app,
            "POST",
            "/clusters/ns/demo/v1/controller/brokers/0/register",
            json={"url": "http://demo-0:9092", "incarnation": "x"},
        )
        assert registered.status_code == 200, registered.text
        metadata = await _call(app, "GET", "/clusters/ns/demo/v1/controller/metadata", params={"since": -1})
        assert metadata.json()["brokers"][0]["url"] == "http://demo-0:9092"
        assert (await _call(app, "GET", "/clusters/ns/other/v1/controller/metadata")).status_code == 503
        assert (await _call(app, "GET", "/clusters/ns")).status_code == 404
        metrics = (await _call(app, "GET", "/metrics")).text
        assert "gafka_operator_active 1.0" in metrics and "gafka_operator_controllers 1.0" in metrics

        await host.remove(key)
        assert host.get(key) is None
        assert (await _call(app, "GET", "/clusters/ns/demo/v1/controller/metadata")).status_code == 503
        # loaded again (a fail-over, a restart): the same metadata from the ConfigMap
        again = await host.ensure(key, cluster_id="c1", settings=ControllerSettings(), labels={}, owner=None)
        assert 0 in again.controller.metadata().brokers
        await host.remove_all()

    _run(scenario)


def test_foreign_metadata_is_not_loaded() -> None:
    api = FakeKubeApi()
    host = ControllerHost(api)  # type: ignore[arg-type]

    async def scenario() -> None:
        await host.ensure(("ns", "demo"), cluster_id="old", settings=ControllerSettings(), labels={}, owner=None)
        await host.remove_all()
        with pytest.raises(ForeignMetadataError, match="cluster id old"):
            await host.ensure(("ns", "demo"), cluster_id="new", settings=ControllerSettings(), labels={}, owner=None)
        assert host.get(("ns", "demo")) is None

    _run(scenario)
    assert api.get(ObjectRef("ConfigMap", "ns", "demo-metadata")) is not None
