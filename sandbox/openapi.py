"""Request validation against the official HighLevel OpenAPI files, with class-validator messages.

The official files, unchanged as HighLevel publishes them, are kept in ``sandbox/spec/`` so that
a fresh clone is complete (set ``SANDBOX_REFERENCE_DIR`` to validate against other copies).

What a caller may rely on:

- :func:`validate_body` checks one body against an operation's ``requestBody`` schema and returns
  messages in the wording of NestJS's whitelist ``ValidationPipe`` (class-validator), e.g.
  ``property gender should not exist``, ``title must be a string``,
  ``each value in tags must be a string``, ``dndSettings.Call.status must be one of the following
  values: active, inactive, permanent``. An empty list means the body is valid.
- :func:`validate_request` also checks that the method and path exist in the spec, the required
  headers (``Authorization: Bearer ...`` where the operation is secured, ``Version``), required
  query parameters and the body's content type. Client tests run it over every recorded request.
- :func:`validate_instance` applies the same rules to a schema the caller supplies.

How the spec is read (each rule says why):

- Every object schema that declares properties is whitelisted (``additionalProperties: false``):
  the real API runs ``ValidationPipe({whitelist: true, forbidNonWhitelisted: true})``.
- ``nullable: true`` (OpenAPI 3.0) allows ``null``.
- ``$ref`` to ``#/components/schemas/...`` is inlined. A ``$ref`` into another file that is not
  provided (``../common/common-schemas.json``, used only by error responses) is treated as any
  type and listed in :data:`UNRESOLVED_REFS`.
- ``type: object`` with no properties and a non-object ``example`` (``dateOfBirth``, a numeric
  custom field's ``field_value``) is how NestJS's swagger plugin renders a property typed ``any``
  or a union; it is treated as any type, because the spec's own example (a string or a number)
  would otherwise fail.
- An object schema with no properties at all (``SearchBodyV2DTO``, ``AddContactToCampaignDto``)
  documents nothing, so it is not whitelisted: the real endpoints take bodies the spec omits.

Documented deviations from the bare spec (``strict_spec=False``, the default, which the Contacts
sandbox uses): custom field items accept ``key`` instead of ``id`` (the spec's own description says
"pass either id or key") and ``fieldValue`` besides ``field_value`` (reported working on v2; v3
prefers it). ``strict_spec=True`` keeps the schema's ``required: [id]`` and ``field_value`` only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema

REFERENCE_DIR = Path(
    os.environ.get("SANDBOX_REFERENCE_DIR") or Path(__file__).resolve().parent / "spec"
)
SPEC_FILES = {
    "contacts": "highlevel-contacts-openapi.json",
    "oauth": "highlevel-oauth-openapi.json",
}
FORM = "application/x-www-form-urlencoded"

#: External ``$ref`` targets that could not be resolved and were treated as any type.
UNRESOLVED_REFS: set[str] = set()

# The custom-field item schemas whose `id`/`key` and `field_value`/`fieldValue` rules are relaxed.
_CUSTOM_FIELD_SCHEMAS = frozenset(
    {
        "TextField",
        "LargeTextField",
        "SingleSelectField",
        "RadioField",
        "NumericField",
        "MonetoryField",
        "CheckboxField",
        "MultiSelectField",
        "FileField",
    }
)
_ID_OR_KEY_MESSAGE = "id or key must be provided"

_TYPE_MESSAGES = {
    "string": "must be a string",
    "boolean": "must be a boolean value",
    "number": "must be a number conforming to the specified constraints",
    "integer": "must be an integer number",
    "array": "must be an array",
    "object": "must be an object",
}


@cache
def load_spec(name: str) -> dict[str, Any]:
    """The parsed OpenAPI document ``name`` (``"contacts"`` or ``"oauth"``)."""
    path = REFERENCE_DIR / SPEC_FILES[name]
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


# --- schema preparation ---------------------------------------------------------------------
def prepare_schema(
    schema: Mapping[str, Any], spec: Mapping[str, Any] | None = None, *, strict_spec: bool = False
) -> dict[str, Any]:
    """``schema`` with refs inlined and the whitelist/nullable rules of the module docstring."""
    return _Preparer(spec or {}, strict_spec=strict_spec).prepare(schema, ())


class _Preparer:
    def __init__(self, spec: Mapping[str, Any], *, strict_spec: bool) -> None:
        self.spec = spec
        self.strict_spec = strict_spec

    def prepare(self, schema: Mapping[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        if "$ref" in schema:
            return self._ref(schema["$ref"], stack)
        out: dict[str, Any] = {
            k: v for k, v in schema.items() if k not in ("example", "description", "nullable")
        }
        for key in ("anyOf", "oneOf", "allOf"):
            if key in out:
                out[key] = [self.prepare(s, stack) for s in out[key]]
        if "items" in out and isinstance(out["items"], Mapping):
            out["items"] = self.prepare(out["items"], stack)
        if out.get("type") == "object" or "properties" in out:
            props = out.get("properties") or {}
            if props:
                out["properties"] = {k: self.prepare(v, stack) for k, v in props.items()}
                out["additionalProperties"] = False
            elif "example" in schema and not isinstance(schema["example"], (dict, type(None))):
                # swagger's rendering of a property typed `any` or a union: its example is no object
                out = {}
        if schema.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out

    def _ref(self, ref: str, stack: tuple[str, ...]) -> dict[str, Any]:
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            # another file (common-schemas.json) is not provided: accept anything there
            UNRESOLVED_REFS.add(ref)
            return {}
        name = ref[len(prefix) :]
        if name in stack:
            return {}  # a recursive schema: stop inlining rather than loop
        target = self.spec.get("components", {}).get("schemas", {}).get(name)
        if target is None:
            UNRESOLVED_REFS.add(ref)
            return {}
        prepared = self.prepare(target, (*stack, name))
        if name in _CUSTOM_FIELD_SCHEMAS and not self.strict_spec:
            prepared = _relax_custom_field(prepared)
        return prepared


def _relax_custom_field(schema: dict[str, Any]) -> dict[str, Any]:
    """Accept ``key`` for ``id`` and ``fieldValue`` for ``field_value`` (module docstring)."""
    props = dict(schema.get("properties", {}))
    if "field_value" in props:
        props["fieldValue"] = props["field_value"]
    out = {
        **schema,
        "properties": props,
        "required": [r for r in schema.get("required", []) if r != "id"],
    }
    out["anyOf"] = [{"required": ["id"]}, {"required": ["key"]}]
    out["x-message"] = _ID_OR_KEY_MESSAGE
    return out


# --- error messages ---------------------------------------------------------------------------
def validate_instance(schema: Mapping[str, Any], instance: object) -> list[str]:
    """Messages for ``instance`` against a raw OpenAPI-style ``schema``; empty when valid."""
    return _messages(_validator_for(json.dumps(schema, sort_keys=True)), instance)


@lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(prepare_schema(json.loads(schema_json)))


def _messages(validator: jsonschema.Draft7Validator, instance: object) -> list[str]:
    out: list[str] = []
    for error in validator.iter_errors(instance):
        out.extend(_format(error))
    return list(dict.fromkeys(out))  # de-duplicated, first occurrence order


def _name(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _type_message(name: str, schema_type: object) -> str:
    types = schema_type if isinstance(schema_type, list) else [schema_type]
    main = str(next((t for t in types if t != "null"), "object"))
    return f"{name} {_TYPE_MESSAGES.get(main, f'must be a {main}')}"


@dataclass(frozen=True)
class _Failure:
    """One validation error with the names its message is written with."""

    error: jsonschema.ValidationError
    path: list[Any]
    name: str  # the dotted path of the value, "body" for the body itself
    prefix: str  # the dotted path and a dot, "" for the body itself
    schema: Mapping[str, Any]


def _format(error: jsonschema.ValidationError) -> list[str]:
    path = list(error.absolute_path)
    failure = _Failure(
        error,
        path,
        _name(path) or "body",
        f"{_name(path)}." if path else "",
        error.schema if isinstance(error.schema, Mapping) else {},
    )
    formatter = _FORMATTERS.get(str(error.validator))
    messages = formatter(failure) if formatter is not None else None
    return messages if messages is not None else [f"{failure.name} is invalid ({error.message})"]


def _any_of(failure: _Failure) -> list[str] | None:
    message = failure.schema.get("x-message")
    if message and all(sub.validator == "required" for sub in failure.error.context or []):
        return [f"{failure.prefix}{message}"]
    return _closest_branch(failure)


def _closest_branch(failure: _Failure) -> list[str] | None:
    """The alternative that came closest, reported as a single DTO would be."""
    if not failure.error.context:
        return None
    branches: dict[Any, list[jsonschema.ValidationError]] = {}
    for sub in failure.error.context:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
    best = min(branches.values(), key=len)
    return [m for sub in best for m in _format(sub)]


def _additional_properties(failure: _Failure) -> list[str]:
    declared = failure.schema.get("properties", {})
    return [
        f"{failure.prefix}property {k} should not exist"
        for k in failure.error.instance
        if k not in declared
    ]


def _required(failure: _Failure) -> list[str]:
    props = failure.schema.get("properties", {})
    missing = [r for r in failure.error.validator_value if r not in failure.error.instance]
    return [
        _type_message(f"{failure.prefix}{r}", props[r]["type"])
        if "type" in props.get(r, {})
        else f"{failure.prefix}{r} should not be empty"
        for r in missing
    ]


def _type(failure: _Failure) -> list[str]:
    path = failure.path
    if path and isinstance(path[-1], int):
        return [_type_message(f"each value in {_name(path[:-1])}", failure.error.validator_value)]
    return [_type_message(failure.name, failure.error.validator_value)]


def _enum(failure: _Failure) -> list[str]:
    values = ", ".join(str(v) for v in failure.error.validator_value)
    return [f"{failure.name} must be one of the following values: {values}"]


_BOUNDS = {
    "maxLength": "must be shorter than or equal to {} characters",
    "minLength": "must be longer than or equal to {} characters",
    "maximum": "must not be greater than {}",
    "minimum": "must not be less than {}",
}


def _bound(failure: _Failure) -> list[str]:
    text = _BOUNDS[str(failure.error.validator)].format(failure.error.validator_value)
    return [f"{failure.name} {text}"]


# validator keyword -> its class-validator wording (None: fall back to the generic message)
_FORMATTERS: dict[str, Callable[[_Failure], list[str] | None]] = {
    "anyOf": _any_of,
    "oneOf": _closest_branch,
    "additionalProperties": _additional_properties,
    "required": _required,
    "type": _type,
    "enum": _enum,
    **dict.fromkeys(_BOUNDS, _bound),
}


# --- operations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    """One operation of an official spec."""

    spec: str
    method: str
    template: str
    parameters: tuple[dict[str, Any], ...]
    secured: bool
    body_required: bool
    content_type: str | None
    body_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def regex(self) -> re.Pattern[str]:
        """Matches the concrete paths of this operation's template."""
        return _template_regex(self.template)


@cache
def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


@cache
def operations() -> tuple[Operation, ...]:
    """Every operation of both specs, literal paths before templated ones."""
    ops: list[Operation] = []
    for spec_name in SPEC_FILES:
        spec = load_spec(spec_name)
        for template, item in spec.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method == "parameters":
                    continue
                body = op.get("requestBody") or {}
                content = body.get("content") or {}
                ctype = next(iter(content), None)
                raw_schema = content[ctype].get("schema") if ctype else None
                ops.append(
                    Operation(
                        spec=spec_name,
                        method=method.upper(),
                        template=template,
                        parameters=tuple(shared) + tuple(op.get("parameters", [])),
                        secured=bool(op.get("security", spec.get("security"))),
                        body_required=bool(body.get("required")),
                        content_type=ctype,
                        body_schema=raw_schema,
                    )
                )
    ops.sort(key=lambda o: (o.template.count("{"), o.template))
    return tuple(ops)


def find_operation(method: str, path: str) -> Operation | None:
    """The operation for ``method`` and a concrete path or a path template; ``None`` if absent."""
    method = method.upper()
    candidates = [o for o in operations() if o.method == method]
    for op in candidates:
        if op.template == path:
            return op
    for op in candidates:
        if op.regex.match(path):
            return op
    return None


@cache
def _body_validator(method: str, template: str, *, strict_spec: bool) -> jsonschema.Draft7Validator:
    op = find_operation(method, template)
    if op is None or op.body_schema is None:
        raise KeyError(f"{method} {template} has no request body in the official spec")
    schema = prepare_schema(op.body_schema, load_spec(op.spec), strict_spec=strict_spec)
    return jsonschema.Draft7Validator(schema)


def validate_body(method: str, path: str, body: object, *, strict_spec: bool = False) -> list[str]:
    """class-validator messages for ``body`` sent to ``method path`` (template or concrete path).

    A missing body counts as ``{}``, as NestJS hands an empty object to the pipe. Raises
    ``KeyError`` when the operation has no request body in the spec.
    """
    op = find_operation(method, path)
    if op is None:
        raise KeyError(f"{method} {path} is not in the official spec")
    validator = _body_validator(op.method, op.template, strict_spec=strict_spec)
    return _messages(validator, {} if body is None else body)


def validate_request(
    method: str,
    path: str,
    headers: Mapping[str, str] | None,
    body: object,
    *,
    query: Mapping[str, Any] | None = None,
) -> list[str]:
    """Everything wrong with one request by the official spec; empty when it conforms.

    ``path`` may carry a query string; ``query`` (``{name: value or [values]}``, as in the
    sandbox request log) adds to it. ``headers`` are matched case-insensitively. ``body`` may be
    parsed JSON, a form dict, ``str``/``bytes`` (decoded by the operation's content type) or
    ``None``. Problems are reported as ``"<METHOD> <template>: <problem>"``. Bodies are held to
    the sandbox's rules (``strict_spec=False`` of :func:`validate_body`).
    """
    parts = urlsplit(path)
    params = {k: list(v) for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for name, value in (query or {}).items():
        params.setdefault(name, []).extend(value if isinstance(value, list) else [str(value)])
    op = find_operation(method, parts.path)
    if op is None:
        known = any(o.regex.match(parts.path) for o in operations())
        why = "method not allowed for this path" if known else "no such path"
        return [f"{method.upper()} {parts.path}: {why} in the official spec"]
    where = f"{op.method} {op.template}"
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    problems: list[str] = []
    if op.secured:
        auth = hdrs.get("authorization")
        if not auth:
            problems.append("missing header Authorization")
        elif not re.match(r"^Bearer \S+", auth):
            problems.append("header Authorization must be 'Bearer <token>'")
    for param in op.parameters:
        problems.extend(_check_parameter(param, hdrs, params))
    problems.extend(_check_body(op, hdrs, body))
    return [f"{where}: {p}" for p in problems]


def _check_parameter(
    param: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, list[str]]
) -> list[str]:
    name, where = param.get("name", ""), param.get("in")
    schema = param.get("schema", {})
    if where == "header":
        value = headers.get(name.lower())
    elif where == "query":
        values = query.get(name)
        value = values[0] if values else None
    else:
        return []  # path parameters matched already
    if value is None:
        return [f"missing required {where} {name}"] if param.get("required") else []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where} {name} must be one of {schema['enum']}, got {value!r}"]
    if schema.get("type") in ("number", "integer"):
        try:
            float(value)
        except ValueError:
            return [f"{where} {name} must be a number, got {value!r}"]
    if schema.get("type") == "boolean" and value not in ("true", "false"):
        return [f"{where} {name} must be true or false, got {value!r}"]
    return []


def _check_body(op: Operation, headers: Mapping[str, str], body: object) -> list[str]:
    if op.content_type is None:
        return [] if body in (None, b"", "", {}) else ["the operation takes no body"]
    if body in (None, b"", ""):
        return ["missing request body"] if op.body_required else []
    ctype = headers.get("content-type")
    problems = []
    if ctype and ctype.split(";")[0].strip().lower() != op.content_type:
        problems.append(f"Content-Type must be {op.content_type}, got {ctype!r}")
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if op.content_type == FORM:
            body = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        else:
            try:
                body = json.loads(text)
            except ValueError:
                return [*problems, "body is not valid JSON"]
    return problems + validate_body(op.method, op.template, body)
