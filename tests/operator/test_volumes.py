"""Growing broker volumes (spec.storage.size): Kubernetes quantities, the claims, and the pure decision."""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gafka_operator.drift import desired_vs_actual, parse_quantity
from gafka_operator.manifests import ClusterRef, Platform, stateful_set
from gafka_operator.spec import ClusterSpec
from gafka_operator.volumes import (
    ClaimState,
    VolumeAction,
    claim_broker_id,
    claim_state,
    claim_template_size,
    plan_volumes,
    resize_progress,
    storage_quantity,
    with_claim_size,
)

REF = ClusterRef("demo", "ns", "uid-1")
PLATFORM = Platform(controller_url="http://op:8080", default_image="gafka/broker:1")

BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
SUFFIXES = {**BINARY, **DECIMAL}


# ---------------------------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10Gi", 10 * (1 << 30)),
        ("500M", 500 * 10**6),
        ("1.5Gi", 3 * (1 << 29)),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1E", 10**18),
        ("1.5e3", 1500),
        ("1Gi ", 1 << 30),
        ("1.5.3", None),
        ("1e", None),
        ("0.5Ki", 512),
        (".5Mi", 1 << 19),
        ("1000m", 1),
        ("12345", 12345),
    ],
)
def test_quantities(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            parse_quantity(text)
    else:
        assert parse_quantity(text) == expected


@pytest.mark.parametrize(("small", "large"), [("1G", "1Gi"), ("953Mi", "1G"), ("1Ti", "1100G"), ("500M", "0.5Gi")])
def test_binary_and_decimal_suffixes_compare_by_value(small: str, large: str) -> None:
    assert parse_quantity(small) < parse_quantity(large)


@pytest.mark.parametrize("text", ["", "lots", "10 Gi", "10gi", "Gi", "1.2.3", "0", "-1Gi", "0Mi", True, None])
def test_not_a_storage_size(text: Any) -> None:
    assert storage_quantity(text) is None


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SUFFIXES)))
def test_whole_amounts_with_any_suffix(amount: int, suffix: str) -> None:
    assert parse_quantity(f"{amount}{suffix}") == amount * SUFFIXES[suffix]


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(sorted(SUFFIXES)),
)
def test_fractions_are_exact(whole: int, thousandths: int, suffix: str) -> None:
    text = f"{whole}.{thousandths:03d}{suffix}"
    assert Fraction(parse_quantity(text)) == (whole + Fraction(thousandths, 1000)) * SUFFIXES[suffix]


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=18))
def test_exponents(mantissa: int, exponent: int) -> None:
    assert parse_quantity(f"{mantissa}e{exponent}") == mantissa * 10**exponent


@given(
    st.integers(min_value=1, max_value=10**5),
    st.sampled_from(sorted(SUFFIXES)),
    st.integers(min_value=1, max_value=10**5),
    st.sampled_from(sorted(SUFFIXES)),
)
def test_comparisons_follow_the_byte_counts(a: int, a_suffix: str, b: int, b_suffix: str) -> None:
    left, right = a * SUFFIXES[a_suffix], b * SUFFIXES[b_suffix]
    parsed_left, parsed_right = parse_quantity(f"{a}{a_suffix}"), parse_quantity(f"{b}{b_suffix}")
    assert (parsed_left < parsed_right) == (left < right)
    assert (parsed_left == parsed_right) == (left == right)


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi"]))
def test_the_api_servers_canonical_form_is_the_same_size(amount: int, suffix: str) -> None:
    """The API server may answer 1024Mi for 1Gi: the same size, never a change."""
    smaller = {"Mi": "Ki", "Gi": "Mi", "Ti": "Gi", "Pi": "Ti"}.get(suffix)
    if smaller is not None:
        assert parse_quantity(f"{amount}{suffix}") == parse_quantity(f"{amount * 1024}{smaller}")
    assert storage_quantity(f"{amount}{suffix}") == Decimal(amount * BINARY[suffix])


# -------------------------------------------------------------------------------------------------- claims


def _pvc(name: str, requested: str = "10Gi", capacity: str | None = "10Gi", **status: Any) -> dict[str, Any]:
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": requested}}},
        "status": {"phase": "Bound" if capacity else "Pending", **status},
    }
    if capacity is not None:
        pvc["status"]["capacity"] = {"storage": capacity}
    return pvc


def _claim(broker_id: int, requested: str = "10Gi", capacity: str | None = "10Gi", **kw: Any) -> ClaimState:
    return ClaimState(f"data-demo-{broker_id}", broker_id, requested, capacity, **kw)


@pytest.mark.parametrize(
    ("cluster", "name", "expected"),
    [
        ("demo", "data-demo-0", 0),
        ("demo", "data-demo-12", 12),
        ("demo", "data-demo-x-0", None),  # cluster demo-x's
        ("demo-x", "data-demo-x-0", 0),
        ("demo", "data-demo-01", None),
        ("demo", "logs-demo-0", None),
        ("demo", "data-demo-", None),
        ("a.b", "data-aXb-0", None),
    ],
)
def test_claims_of_a_cluster_by_name(cluster: str, name: str, expected: int | None) -> None:
    assert claim_broker_id(cluster, name) == expected


def test_claim_state_reads_what_a_resize_reports() -> None:
    pvc = _pvc(
        "data-demo-1",
        "20Gi",
        "10Gi",
        conditions=[
            {"type": "Resizing", "status": "True"},
            {"type": "FileSystemResizePending", "status": "False"},
        ],
        allocatedResourceStatuses={"storage": "ControllerResizeInProgress"},
    )
    assert claim_state("demo", pvc) == ClaimState(
        "data-demo-1", 1, "20Gi", "10Gi", "Bound", "ControllerResizeInProgress", ("Resizing",)
    )
    assert claim_state("other", pvc) is None
    assert claim_state("demo", {"metadata": {"name": "data-demo-0"}}) == ClaimState("data-demo-0", 0)


# ------------------------------------------------------------------------------------------ claim template


def _sts(size: str, storage_class: str | None = None) -> dict[str, Any]:
    storage: dict[str, Any] = {"size": size}
    if storage_class:
        storage["storageClassName"] = storage_class
    return stateful_set(REF, ClusterSpec.from_mapping({"storage": storage}), PLATFORM)


def _served(sts: dict[str, Any]) -> dict[str, Any]:
    live = copy.deepcopy(sts)
    claim = live["spec"]["volumeClaimTemplates"][0]
    claim |= {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}
    claim["spec"]["volumeMode"] = "Filesystem"
    claim["spec"]["resources"]["requests"]["storage"] = str(claim["spec"]["resources"]["requests"]["storage"])
    live["metadata"] |= {"uid": "sts-1", "resourceVersion": "7"}
    return live


def test_the_claim_size_is_left_to_the_volume_step() -> None:
    live = _served(_sts("10Gi"))
    assert claim_template_size(live) == "10Gi"
    desired = _sts("20Gi")
    assert desired_vs_actual(desired, live).immutable == (("spec", "volumeClaimTemplates"),)
    kept = with_claim_size(desired, claim_template_size(live) or "")
    assert claim_template_size(kept) == "10Gi" and claim_template_size(desired) == "20Gi"  # a copy
    assert desired_vs_actual(kept, live).in_sync
    # another change of the template stays an immutable difference: the StatefulSet is not replaced for it
    other = with_claim_size(_sts("20Gi", storage_class="fast"), "10Gi")
    assert desired_vs_actual(other, live).immutable == (("spec", "volumeClaimTemplates"),)
    assert claim_template_size({"spec": {}}) is None
    assert with_claim_size({"spec": {}}, "1Gi") == {"spec": {}}


# ---------------------------------------------------------------------------------------------- the plan


def test_growing_patches_every_smaller_claim_then_replaces_the_statefulset() -> None:
    claims = [_claim(1), _claim(0), _claim(2, "20Gi")]
    plan = plan_volumes("20Gi", "10Gi", claims)
    assert plan.action is VolumeAction.EXPAND
    assert plan.claims == ("data-demo-0", "data-demo-1") and plan.replace and plan.size == "20Gi"
    assert "data-demo-0, data-demo-1" in plan.message and not plan.refused

    # every claim asks for 20Gi: only the StatefulSet's template is left
    grown = [_claim(i, "20Gi") for i in range(3)]
    replace = plan_volumes("20Gi", "10Gi", grown)
    assert replace.action is VolumeAction.REPLACE and replace.replace and replace.claims == ()
    assert plan_volumes("20Gi", "20Gi", grown).action is VolumeAction.NONE
    assert plan_volumes("20Gi", "20480Mi", [_claim(0, "21474836480")]).action is VolumeAction.NONE


def test_the_statefulset_is_replaced_only_when_scaling_is_at_rest() -> None:
    plan = plan_volumes("20Gi", "10Gi", [_claim(0)], steady=False)
    assert plan.action is VolumeAction.EXPAND and not plan.replace
    wait = plan_volumes("20Gi", "10Gi", [_claim(0, "20Gi")], steady=False)
    assert wait.action is VolumeAction.WAIT and not wait.replace


def test_another_template_change_is_not_made_by_replacing() -> None:
    plan = plan_volumes("20Gi", "10Gi", [_claim(0)], replaceable=False)
    assert plan.action is VolumeAction.EXPAND and not plan.replace
    assert plan_volumes("20Gi", "10Gi", [_claim(0, "20Gi")], replaceable=False).action is VolumeAction.NONE


def test_without_a_statefulset_claims_still_grow() -> None:
    """E.g. claims adopted through spec.clusterId: the StatefulSet is created with the new template anyway."""
    plan = plan_volumes("20Gi", None, [_claim(0)])
    assert plan.action is VolumeAction.EXPAND and plan.claims == ("data-demo-0",) and not plan.replace
    assert plan_volumes("20Gi", None, []).action is VolumeAction.NONE


def test_shrinking_is_refused() -> None:
    plan = plan_volumes("5Gi", "10Gi", [_claim(0), _claim(1, "5Gi"), _claim(2)])
    assert plan.action is VolumeAction.REFUSE and plan.refused
    assert plan.claims == ("data-demo-0", "data-demo-2")
    assert "cannot shrink" in plan.message and "10Gi" in plan.message and "5Gi" in plan.message
    template_only = plan_volumes("5Gi", "10Gi", [])
    assert template_only.action is VolumeAction.REFUSE and "claim template (10Gi)" in template_only.message
    # 1G is less than 1Gi
    assert plan_volumes("1G", "1Gi", [_claim(0, "1Gi")]).action is VolumeAction.REFUSE


@pytest.mark.parametrize("size", ["lots", "0", "-1Gi", ""])
def test_an_invalid_size(size: str) -> None:
    plan = plan_volumes(size, "10Gi", [_claim(0)])
    assert plan.action is VolumeAction.INVALID and plan.refused and repr(size) in plan.message


SIZES = st.integers(min_value=1, max_value=64).map(lambda gib: f"{gib}Gi")


@given(SIZES, st.one_of(st.none(), SIZES), st.lists(SIZES, max_size=5), st.booleans(), st.booleans())
def test_the_plan_never_shrinks_and_grows_exactly_the_smaller_claims(
    size: str, template: str | None, requested: list[str], steady: bool, replaceable: bool
) -> None:
    claims = [_claim(i, r) for i, r in enumerate(requested)]
    plan = plan_volumes(size, template, claims, steady=steady, replaceable=replaceable)
    want = parse_quantity(size)
    larger = [c.name for c in claims if parse_quantity(c.requested or "") > want]
    smaller = [c.name for c in claims if parse_quantity(c.requested or "") < want]
    template_larger = template is not None and parse_quantity(template) > want
    if larger or template_larger:
        assert plan.action is VolumeAction.REFUSE and plan.claims == tuple(larger) and not plan.replace
        return
    if smaller:
        assert plan.action is VolumeAction.EXPAND and plan.claims == tuple(smaller)
    stale = template is not None and parse_quantity(template) < want
    # replaced only when at rest, for the size alone, and once (or as soon as) every claim asks for the size
    assert plan.replace == (stale and steady and replaceable)
    if not smaller:
        expected = VolumeAction.NONE
        if stale and replaceable:
            expected = VolumeAction.REPLACE if steady else VolumeAction.WAIT
        assert plan.action is expected


# ------------------------------------------------------------------------------------------- the progress


def test_progress_says_what_the_claims_say() -> None:
    assert resize_progress([_claim(0), _claim(1, "20Gi", None)]) is None  # in sync / not bound yet
    assert resize_progress([_claim(0, "10Gi", "20Gi")]) is None  # a volume larger than asked for
    requested = resize_progress([_claim(0, "20Gi"), _claim(1, "20Gi", "20Gi")])
    assert requested == ("ResizeRequested", "data-demo-0: 10Gi of 20Gi (Requested)")
    stages = resize_progress(
        [
            _claim(0, "20Gi", conditions=("Resizing",)),
            _claim(1, "20Gi", conditions=("FileSystemResizePending",)),
            _claim(2, "20Gi"),
        ]
    )
    assert stages is not None and stages[0] == "FileSystemResizePending"
    assert stages[1].split("; ") == [
        "data-demo-0: 10Gi of 20Gi (Resizing)",
        "data-demo-1: 10Gi of 20Gi (FileSystemResizePending)",
        "data-demo-2: 10Gi of 20Gi (Requested)",
    ]
    failed = resize_progress([_claim(0, "20Gi", resize_status="NodeResizeInfeasible"), _claim(1, "20Gi")])
    assert failed is not None and failed[0] == "ResizeInfeasible"
    assert resize_progress([_claim(0, "20Gi", resize_status="ControllerResizeInProgress")]) == (
        "ControllerResizeInProgress",
        "data-demo-0: 10Gi of 20Gi (ControllerResizeInProgress)",
    )
