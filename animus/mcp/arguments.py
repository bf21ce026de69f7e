"""Tool arguments: the JSON-schema subset the tools declare, checked before any call.

The tools' input schemas are plain JSON Schema (what ``tools/list`` shows a
model). A model's call is checked against the same schema here, so a bad
argument comes back as one tool error naming the argument, what was wrong
and what is allowed — never a traceback, and never a half-done call. Only
what the tools use is implemented: an object of named properties with
``type`` (string, integer, boolean, object, array of strings), ``enum``,
``minimum``/``maximum``, ``minLength``, ``required``, and no other keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from animus.errors import InvalidInput

__all__ = ["check_arguments", "string", "integer", "strings", "mapping", "obj"]

_PYTHON = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def string(description: str, enum: tuple[str, ...] | None = None, min_length: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": description}
    if enum:
        out["enum"] = list(enum)
    if min_length:
        out["minLength"] = min_length
    return out


def integer(description: str, minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum}


def strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def mapping(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description}


def obj(properties: dict[str, dict[str, Any]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An input schema: these properties, these required, nothing else."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer" and isinstance(value, bool):
        return False  # JSON true is not 1
    return isinstance(value, _PYTHON[kind])


def _check(tool: str, name: str, value: Any, spec: Mapping[str, Any]) -> None:
    kind = str(spec.get("type"))
    if not _type_ok(value, kind):
        raise InvalidInput(f"{tool}: argument {name!r} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, "
                           f"got {type(value).__name__} {value!r:.60}")
    if kind == "array" and not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{tool}: argument {name!r} must be a list of strings")
    if "enum" in spec and value not in spec["enum"]:
        raise InvalidInput(f"{tool}: argument {name!r} is {value!r}: expected one of {', '.join(spec['enum'])}")
    if kind == "string" and len(value.strip()) < int(spec.get("minLength", 0)):
        raise InvalidInput(f"{tool}: argument {name!r} must not be empty")
    if kind == "integer" and not int(spec.get("minimum", value)) <= value <= int(spec.get("maximum", value)):
        raise InvalidInput(f"{tool}: argument {name!r} is {value}: expected {spec['minimum']} to {spec['maximum']}")


def check_arguments(tool: str, schema: Mapping[str, Any], arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the arguments without nulls, or raise ``InvalidInput`` naming the first bad one.

    A null counts as "not given", as models often send ``"id": null`` for an
    optional argument.
    """
    args = {k: v for k, v in dict(arguments or {}).items() if v is not None}
    properties: Mapping[str, Any] = schema.get("properties", {})
    unknown = sorted(set(args) - set(properties))
    if unknown:
        raise InvalidInput(f"{tool}: unknown argument(s) {', '.join(unknown)}",
                           fix=f"{tool} takes {', '.join(properties) or 'no arguments'}")
    for name in schema.get("required", ()):
        if name not in args:
            raise InvalidInput(f"{tool}: missing required argument {name!r}",
                               fix=f"{name}: {properties[name].get('description', '')}")
    for name, value in args.items():
        _check(tool, name, value, properties[name])
    return args
