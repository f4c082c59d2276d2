"""Is a live object still what the operator built? A pure diff that only looks at the fields the operator owns.

The API server adds defaults (``protocol``, ``terminationMessagePath``, ``revisionHistoryLimit``...), other
controllers add annotations and labels, and quantities come back normalized (``1000m`` -> ``1``). Comparing whole
objects would therefore see drift forever and update in a loop. Instead the *desired* object says what is owned:
every field it sets must match, everything else in the live object is ignored. Lists are compared whole, element
by element with the same rule, because a merge patch replaces them whole.

Some fields cannot be changed once an object exists (a StatefulSet's selector and volumeClaimTemplates, a Service's
clusterIP); a difference there is reported apart so the operator can act (recreate, or resize the claims itself)
instead of sending a patch the API server refuses.

One thing a pure diff cannot see: a label or annotation the operator *stopped* setting (e.g. removed from
spec.podTemplate) is indistinguishable from one someone else added. Writing with server-side apply under one field
manager removes such fields; this diff then only decides whether a write is needed at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Drift", "Path", "desired_vs_actual", "parse_quantity"]

Path = tuple[str | int, ...]

IMMUTABLE: Mapping[str, tuple[Path, ...]] = {
    "StatefulSet": (
        ("spec", "selector"),
        ("spec", "serviceName"),
        ("spec", "volumeClaimTemplates"),
        ("spec", "podManagementPolicy"),
    ),
    "Service": (("spec", "clusterIP"),),
}
"""Fields the API server refuses to change, per kind."""

_IGNORED_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "status"})
_QUANTITY_PARENTS = frozenset({"requests", "limits", "capacity"})

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``1Gi``, ``1e3``) as a number, so equal amounts compare equal."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except InvalidOperation:
        raise ValueError(f"not a quantity: {value!r}") from None


@dataclass(frozen=True, slots=True)
class Drift:
    """How a live object differs from the desired one, in the fields the operator owns."""

    missing: bool = False
    """The object does not exist: create it."""
    changed: tuple[Path, ...] = ()
    """Owned fields that differ and can be patched."""
    immutable: tuple[Path, ...] = ()
    """Owned fields that differ but cannot be changed in place."""
    patch: dict[str, Any] = field(default_factory=dict)
    """A JSON merge patch that puts the ``changed`` fields back (empty when there are none)."""

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.changed or self.immutable)


def _is_quantity_path(path: Path) -> bool:
    return len(path) >= 2 and path[-2] in _QUANTITY_PARENTS


def _scalar_equal(desired: Any, actual: Any, path: Path) -> bool:
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired is actual
    if _is_quantity_path(path) and isinstance(desired, str | int) and isinstance(actual, str | int):
        try:
            return parse_quantity(desired) == parse_quantity(actual)
        except ValueError:
            return False
    return bool(desired == actual)


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def _differs(desired: Any, actual: Any, path: Path) -> list[Path]:
    """Paths under ``path`` where ``actual`` does not hold what ``desired`` sets (lists are atomic)."""
    if isinstance(desired, Mapping):
        if _empty(desired) and _empty(actual):
            return []
        if not isinstance(actual, Mapping):
            return [path]
        found: list[Path] = []
        for key, value in desired.items():
            found += _differs(value, actual.get(key), (*path, key))
        return found
    if isinstance(desired, list | tuple):
        if _empty(desired) and _empty(actual):
            return []
        if not isinstance(actual, Sequence) or isinstance(actual, str) or len(actual) != len(desired):
            return [path]
        for index, (want, have) in enumerate(zip(desired, actual, strict=True)):
            if _differs(want, have, (*path, index)):
                return [path]
        return []
    if desired is None:
        return [] if actual is None else [path]
    return [] if _scalar_equal(desired, actual, path) else [path]


def _owner_refs_differ(desired: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]) -> bool:
    """Every desired owner reference must be there (by uid, with the same flags); other owners are left alone."""
    by_uid = {ref.get("uid"): ref for ref in actual}
    return any(_differs(ref, by_uid.get(ref.get("uid")), ()) for ref in desired)


def _get(obj: Mapping[str, Any], path: Path) -> Any:
    value: Any = obj
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            return None
    return value


def _set(patch: dict[str, Any], path: Path, value: Any) -> None:
    node = patch
    for key in path[:-1]:
        node = node.setdefault(str(key), {})
    node[str(path[-1])] = value


def desired_vs_actual(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> Drift:
    """Compare only what ``desired`` sets: labels, annotations, owner references and every top-level section
    (``spec``, ``data``, ...). Idempotent by construction: applying ``patch`` yields an object in sync."""
    if actual is None:
        return Drift(missing=True)
    paths: list[Path] = []
    want_meta = desired.get("metadata") or {}
    have_meta = actual.get("metadata") or {}
    for key in ("labels", "annotations"):
        paths += _differs(want_meta.get(key) or {}, have_meta.get(key) or {}, ("metadata", key))
    want_refs = want_meta.get("ownerReferences") or []
    have_refs = have_meta.get("ownerReferences") or []
    patch: dict[str, Any] = {}
    if _owner_refs_differ(want_refs, have_refs):
        ours = {ref.get("uid") for ref in want_refs}
        paths.append(("metadata", "ownerReferences"))
        _set(
            patch, ("metadata", "ownerReferences"), [r for r in have_refs if r.get("uid") not in ours] + list(want_refs)
        )
    for key, value in desired.items():
        if key not in _IGNORED_TOP_LEVEL:
            paths += _differs(value, actual.get(key), (key,))
    frozen = IMMUTABLE.get(str(desired.get("kind")), ())
    immutable = tuple(p for p in paths if any(p[: len(prefix)] == prefix for prefix in frozen))
    changed = tuple(p for p in paths if p not in immutable)
    for path in changed:
        if path != ("metadata", "ownerReferences"):
            _set(patch, path, _get(desired, path))
    return Drift(changed=changed, immutable=immutable, patch=patch)
