"""What the API server does with a custom resource, done in Python so CRDs are checked without a cluster.

- :func:`apply_defaults`: structural defaulting (a missing field with a ``default`` gets it, inside objects that exist);
- :func:`json_schema`: the openAPIV3Schema for ``jsonschema``, with unknown fields refused as kubectl's strict field
  validation refuses them (the API server would otherwise prune them silently);
- :func:`cel_errors`: the ``x-kubernetes-validations`` rules, evaluated with cel-python (transition rules, those
  naming ``oldSelf``, only when there is an old object).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CEL_RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if",
                 "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}  # fmt: skip


def load_crd(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "crds" / name).read_text())
    return data


def version_schema(crd: dict[str, Any], version: str = "v1alpha1") -> dict[str, Any]:
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, recursively."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_into(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    _default_into(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_into(schema["items"], item)


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``additionalProperties: false`` wherever the API server would drop unknown fields."""
    out = copy.deepcopy(schema)
    _strict(out)
    return out


def _strict(node: dict[str, Any]) -> None:
    typed_object = node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
    if typed_object and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    for sub in (node.get("properties") or {}).values():
        _strict(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _strict(node[key])


def validate(schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Everything the API server would refuse in ``obj`` (after defaulting), as messages; empty when accepted."""
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in _validator(schema).iter_errors(obj)]
    return errors + cel_errors(schema, obj, old)


def _validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json_schema(schema))


def escape(name: str) -> str:
    """Kubernetes' escaping of property names that are not CEL identifiers (``a.b`` -> ``a__dot__b``)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if _IDENTIFIER.match(name) and "__" not in name:
        return name
    out = name.replace("__", "__underscores__")
    return out.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def _cel_value(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
        if props:
            return {escape(k): _cel_value(props.get(k, {}), v) for k, v in value.items()}
        return {k: _cel_value(extra, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_value(schema.get("items") or {}, v) for v in value]
    return value


def _evaluate(rule: str, self_value: Any, old_value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    activation = {"self": celpy.json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_value)
    result = program.evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return bool(result)


def cel_errors(schema: dict[str, Any], value: Any, old: Any = None, path: str = "") -> list[str]:
    errors: list[str] = []
    if value is None:
        return errors
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"] and old is None:
            continue
        if not _evaluate(rule["rule"], _cel_value(schema, value), None if old is None else _cel_value(schema, old)):
            errors.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            old_sub = old.get(key) if isinstance(old, dict) else None
            errors += cel_errors(sub, value.get(key), old_sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += cel_errors(schema["items"], item, None, f"{path}[{index}]")
    return errors


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every node of a schema with its path (``spec.storage.size``, ``status.conditions[]``)."""
    nodes = [(path, schema)]
    for key, sub in (schema.get("properties") or {}).items():
        nodes += walk(sub, f"{path}.{key}" if path else key)
    if isinstance(schema.get("items"), dict):
        nodes += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        nodes += walk(schema["additionalProperties"], f"{path}{{}}")
    return nodes
