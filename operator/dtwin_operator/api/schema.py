"""Turns a pydantic model's JSON Schema into a Kubernetes structural OpenAPI v3 schema.

Kubernetes wants every node typed and self-contained: no `$ref`, no
`anyOf [X, null]` for optionals, OpenAPI 3.0's boolean `exclusiveMinimum`, and no
`title`. This module rewrites pydantic's output into that shape and keeps what
matters to the API server: descriptions, defaults, enums, ranges, patterns,
list types and CEL rules (`x-kubernetes-validations`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_DROP = {"title", "$defs"}
_KEEP_DEFAULT_TYPES = (str, int, float, bool, dict, list)


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of `model` (wire names, i.e. camelCase aliases)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    # Keywords beside a $ref (description, default) override the target's.
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _unwrap_optional(node: dict[str, Any]) -> dict[str, Any]:
    """`X | None` comes out as anyOf [X, {type: null}]; an omitted field is how Kubernetes says None."""
    variants = node.get("anyOf")
    if not variants:
        return node
    real = [v for v in variants if v.get("type") != "null"]
    if len(real) != 1:
        raise ValueError(f"unions are not structural: {node}")
    merged = {**real[0], **{k: v for k, v in node.items() if k != "anyOf"}}
    if merged.get("default", 0) is None:
        del merged["default"]
    return merged


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _unwrap_optional(_deref(node, defs))
    node = _deref(node, defs)  # the optional's inner type may itself be a $ref
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "default" and not isinstance(value, _KEEP_DEFAULT_TYPES):
            continue
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = _enum_type(out["enum"])
    if "properties" in out:
        out["type"] = "object"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out:
        raise ValueError(f"schema node has no type, which Kubernetes rejects: {node}")
    return out


def _enum_type(values: list[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) for v in values):
        return "integer"
    return "number"


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (dotted path, node) in a structural schema; handy for tests and docs."""
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += walk(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        found += walk(schema["items"], f"{path}[]")
    return found
