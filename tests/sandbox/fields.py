"""Field tables and the checks the fidelity tests run: names, JSON types, nullability, presence.

A :class:`Field` describes one JSON value: the JSON types it may have, whether it may be null,
whether an object must carry it, and for objects and arrays what they hold. :func:`problems`
lists everything an answer does differently, one readable line per field, so that a failing test
names every missing or mistyped field at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANY = ("string", "integer", "number", "boolean", "array", "object")


def kind(value: Any) -> str:
    """The JSON type of a parsed JSON value (``integer`` and ``number`` kept apart)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "boolean"
    return _KINDS.get(type(value), "object")


_KINDS = {int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def fits(actual: str, declared: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a value of JSON type ``actual`` fits ``declared`` (an integer is a number)."""
    return actual in declared or (actual == "integer" and "number" in declared)


@dataclass
class Field:
    """What one JSON value may be.

    ``fields`` closes an object: a key it does not list is reported as undocumented. ``values``
    describes the values of an object whose keys are free (MOCO's ``custom_properties``).
    """

    types: tuple[str, ...]
    nullable: bool = False
    required: bool = True
    fields: dict[str, Field] | None = None
    items: Field | None = None
    values: Field | None = None
    enum: tuple[Any, ...] | None = None


@dataclass
class Presence:
    """How strictly presence is judged: ``everything`` requires every documented field, except
    the names in ``skip`` (fields the answer cannot carry, each with its reason in the table)."""

    everything: bool = False
    skip: frozenset[str] = field(default_factory=frozenset)


def problems(spec: Field, value: Any, where: str, presence: Presence | None = None) -> list[str]:
    """Every way ``value`` differs from ``spec``; empty when it matches."""
    presence = presence or Presence()
    actual = kind(value)
    if value is None:
        return [] if spec.nullable else [f"{where}: null, but the field is not nullable"]
    if not fits(actual, spec.types):
        return [f"{where}: {actual}, documented {'/'.join(spec.types)}"]
    if spec.enum is not None and value not in spec.enum:
        return [f"{where}: {value!r} is not one of {list(spec.enum)}"]
    out: list[str] = []
    if actual == "object" and spec.fields is not None:
        for name, sub in spec.fields.items():
            if name in value:
                out += problems(sub, value[name], f"{where}.{name}", presence)
            elif sub.required or (presence.everything and name not in presence.skip):
                out.append(f"{where}.{name}: missing")
        out += [f"{where}.{name}: not documented" for name in value if name not in spec.fields]
    elif actual == "object" and spec.values is not None:
        for name, item in value.items():
            out += problems(spec.values, item, f"{where}[{name!r}]", presence)
    elif actual == "array" and spec.items is not None:
        for n, item in enumerate(value):
            out += problems(spec.items, item, f"{where}[{n}]", presence)
    return out


# --- the OpenAPI files: response schemas as field tables ------------------------------------------
SPEC_DIR = Path(__file__).resolve().parents[2] / "sandbox" / "spec"


def load_spec(name: str) -> dict[str, Any]:
    """One of the official OpenAPI files kept in ``sandbox/spec`` (``contacts`` or ``oauth``)."""
    path = SPEC_DIR / f"highlevel-{name}-openapi.json"
    return json.loads(path.read_text(encoding="utf-8"))


def from_schema(schema: dict[str, Any], spec: dict[str, Any], stack: tuple[str, ...] = ()) -> Field:
    """A :class:`Field` for an OpenAPI 3.0 schema: ``type``, ``nullable``, ``properties`` (the
    object's ``required`` list says which must be present), ``items``, ``enum``; ``$ref`` to the
    file's own schemas is followed. A schema without ``type`` admits any JSON type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in stack:  # a recursive schema: stop describing it
            return Field(ANY)
        return from_schema(spec["components"]["schemas"][name], spec, (*stack, name))
    declared = schema.get("type")
    out = Field((declared,) if declared else ANY, nullable=bool(schema.get("nullable")))
    if "enum" in schema:
        out.enum = tuple(schema["enum"])
    if schema.get("properties"):
        required = set(schema.get("required", []))
        out.fields = {}
        for name, sub in schema["properties"].items():
            out.fields[name] = from_schema(sub, spec, stack)
            out.fields[name].required = name in required
    if isinstance(schema.get("items"), dict):
        out.items = from_schema(schema["items"], spec, stack)
    return out


def component(spec: dict[str, Any], name: str) -> Field:
    """The field table of ``#/components/schemas/<name>``."""
    return from_schema({"$ref": f"#/components/schemas/{name}"}, spec)


def wrapper(**fields: Field) -> Field:
    """An answer's outer object; every one of its documented properties is sent."""
    for sub in fields.values():
        sub.required = True
    return Field(("object",), fields=fields)
