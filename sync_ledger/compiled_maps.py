"""Stream-map expressions compiled to Python once, with singer-sdk's evaluator as the authority.

singer-sdk evaluates each stream-map expression by walking its syntax tree with simpleeval for
every record: with this project's maps that cost ~70-140 us per contact, more than the rest of
reading it. :func:`compile_stream_maps` gives each of a target's maps an evaluator that turns an
expression into a Python function the first time it meets it, and runs that function on the
record instead. The meaning of an expression stays singer-sdk's:

- Only a subset is compiled: constants, the record's fields and ``record``/``_``/``config``,
  calls of the evaluator's own functions (``str``, ``bool``, ``md5`` ...) and of methods that
  do not change their object (``get``, ``split``, ``join`` ...), subscripts and slices,
  ``and``/``or``/``not``, ``x if c else y``, one comparison, arithmetic, and list, tuple, set and
  dict displays. Every operation whose meaning simpleeval makes its own runs through simpleeval's
  own pieces: operators through the evaluator's operator functions (its length and power limits
  included), attribute access through :func:`_attribute` (simpleeval's order: the attribute, then
  the item; no module, no forbidden function).
- Anything else (comprehensions, f-strings, ``fake``, ``self``, a name that is not a field of the
  record ...) is left to singer-sdk, expression by expression.
- When a compiled expression raises anything on a record (a missing field, a type error ...),
  singer-sdk evaluates it again on that record, so errors, and names that fall through to the
  evaluator's functions, are exactly singer-sdk's. A compiled expression changes nothing it
  reads, so evaluating it again is safe.

A test evaluates this project's maps and a set of edge expressions both ways and compares them.
"""

from __future__ import annotations

import ast
from contextlib import suppress
from typing import TYPE_CHECKING, Any, cast

import simpleeval
from singer_sdk.mapper import CustomStreamMap

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from singer_sdk.mapper import StreamMap

    Compiled = Callable[[dict[str, Any], Any], Any]

# Methods that change the object they belong to: an expression calling one is not compiled (if
# it failed later on, evaluating it again would change the record twice).
_CHANGING_METHODS = frozenset(
    {
        "add",
        "append",
        "clear",
        "difference_update",
        "discard",
        "extend",
        "insert",
        "intersection_update",
        "pop",
        "popitem",
        "remove",
        "reverse",
        "setdefault",
        "sort",
        "symmetric_difference_update",
        "update",
    }
)
# Names that mean the record itself, and the map's config, whatever fields the record has.
_RECORD_NAMES = frozenset({"record", "_"})
_CONFIG_NAME = "config"
# Names singer-sdk gives a meaning of its own; left to it.
_SPECIAL_NAMES = frozenset({"self", "fake", "__stream_name__", "__original_stream_name__"})

# The compiled function's parameters and the helpers it closes over. Not identifiers a user's
# expression can name: every name in an expression is compiled to a subscript of the record.
_RECORD, _CONFIG, _FUNCTIONS, _OPERATORS, _ATTRIBUTE = "r·", "c·", "f·", "o·", "a·"

_NOT_FOUND = object()


class NotCompiledError(Exception):
    """An expression outside the compiled subset: singer-sdk evaluates it."""


def _attribute(value: object, name: str) -> object:
    """``value.name`` as simpleeval evaluates it (its ``_eval_attribute`` after the name checks)."""
    item = _NOT_FOUND
    try:
        item = getattr(value, name)
    except (AttributeError, TypeError):
        with suppress(KeyError, TypeError):
            item = value[name]  # type: ignore[index]  # simpleeval's item fallback
    if item is _NOT_FOUND:
        raise simpleeval.AttributeDoesNotExist(name, "")
    if isinstance(item, type(simpleeval)):
        msg = "Sorry, modules are not allowed in attribute access"
        raise simpleeval.FeatureNotAvailable(msg)
    if callable(item) and item in simpleeval.DISALLOW_FUNCTIONS:
        msg = "This function is forbidden"
        raise simpleeval.FeatureNotAvailable(msg)
    return item


class _Translator:
    """Rewrites one expression's tree into plain Python that means what simpleeval's walk means."""

    def __init__(self, functions: Mapping[str, Any], operators: Mapping[type, Any]) -> None:
        self._functions = functions
        self._operators = operators
        self.used_functions: list[Any] = []
        self.used_operators: list[Any] = []

    def __call__(self, node: ast.AST) -> ast.expr:  # noqa: C901, PLR0911, PLR0912  one case per node type
        """The Python tree for ``node``; raises :class:`NotCompiledError` outside the subset."""
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str | bytes) and len(value) > simpleeval.MAX_STRING_LENGTH:
                raise NotCompiledError  # simpleeval refuses it
            return ast.Constant(value)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            return self._name(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            return self._attribute(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            return ast.Subscript(self(node.value), self(node.slice), ast.Load())
        if isinstance(node, ast.Slice):
            return ast.Slice(
                *(None if n is None else self(n) for n in (node.lower, node.upper, node.step))
            )
        if isinstance(node, ast.BoolOp):
            return ast.BoolOp(node.op, [self(v) for v in node.values])
        if isinstance(node, ast.IfExp):
            return ast.IfExp(self(node.test), self(node.body), self(node.orelse))
        if isinstance(node, ast.BinOp):
            return self._operator(node.op, [node.left, node.right])
        if isinstance(node, ast.UnaryOp):
            return self._operator(node.op, [node.operand])
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._operator(node.ops[0], [node.left, node.comparators[0]])
        if isinstance(node, ast.List | ast.Tuple | ast.Set) and isinstance(
            getattr(node, "ctx", ast.Load()), ast.Load
        ):
            elements = [self._element(e) for e in node.elts]
            if isinstance(node, ast.Set):
                return ast.Set(elements)
            return type(node)(elements, ast.Load())
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            return ast.Dict(
                [self(cast("ast.expr", k)) for k in node.keys], [self(v) for v in node.values]
            )
        raise NotCompiledError

    def _element(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Starred):
            raise NotCompiledError
        return self(node)

    def _name(self, name: str) -> ast.expr:
        if name in _RECORD_NAMES:
            return ast.Name(_RECORD, ast.Load())
        if name == _CONFIG_NAME:
            return ast.Name(_CONFIG, ast.Load())
        if name in _SPECIAL_NAMES:
            raise NotCompiledError
        # A field of the record; a record without it raises KeyError, and singer-sdk then
        # decides (a function of that name, or its NameNotDefined error).
        return ast.Subscript(ast.Name(_RECORD, ast.Load()), ast.Constant(name), ast.Load())

    def _attribute(self, node: ast.Attribute) -> ast.expr:
        name = node.attr
        if (
            any(name.startswith(prefix) for prefix in simpleeval.DISALLOW_PREFIXES)
            or name in simpleeval.DISALLOW_METHODS
            or name in _CHANGING_METHODS
        ):
            raise NotCompiledError
        return ast.Call(
            ast.Name(_ATTRIBUTE, ast.Load()), [self(node.value), ast.Constant(name)], []
        )

    def _call(self, node: ast.Call) -> ast.expr:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            raise NotCompiledError
        if isinstance(node.func, ast.Attribute):
            func = self._attribute(node.func)
        elif isinstance(node.func, ast.Name):
            # simpleeval calls the evaluator's function of that name (never a record field).
            found = self._functions.get(node.func.id, _NOT_FOUND)
            if found is _NOT_FOUND or found in simpleeval.DISALLOW_FUNCTIONS:
                raise NotCompiledError
            func = self._constant(_FUNCTIONS, self.used_functions, found)
        else:
            raise NotCompiledError
        return ast.Call(
            func,
            [self(a) for a in node.args],
            [ast.keyword(k.arg, self(k.value)) for k in node.keywords],
        )

    def _operator(self, op: ast.AST, operands: Iterable[ast.expr]) -> ast.expr:
        function = self._operators.get(type(op), _NOT_FOUND)
        if function is _NOT_FOUND:
            raise NotCompiledError
        callee = self._constant(_OPERATORS, self.used_operators, function)
        return ast.Call(callee, [self(o) for o in operands], [])

    @staticmethod
    def _constant(table: str, used: list[Any], value: object) -> ast.expr:
        """``table[i]``: a value the compiled function gets in a tuple (an AST holds no objects)."""
        used.append(value)
        return ast.Subscript(ast.Name(table, ast.Load()), ast.Constant(len(used) - 1), ast.Load())


def compile_expression(
    parsed: ast.AST, functions: Mapping[str, Any], operators: Mapping[type, Any]
) -> Compiled:
    """``parsed`` (an ``ast.Expr``) as a function of the record and the map's config.

    Raises :class:`NotCompiledError` for an expression outside the compiled subset.
    """
    if not isinstance(parsed, ast.Expr):
        raise NotCompiledError
    translate = _Translator(functions, operators)
    body = translate(parsed.value)
    # lambda f, o, a: lambda r, c: <body>  (the helpers bound once, the record per call)
    inner = ast.Lambda(_arguments(_RECORD, _CONFIG), body)
    outer = ast.Lambda(_arguments(_FUNCTIONS, _OPERATORS, _ATTRIBUTE), inner)
    tree = ast.fix_missing_locations(ast.Expression(outer))
    make = eval(compile(tree, "<stream map>", "eval"), {"__builtins__": {}})  # noqa: S307  a tree built above from the subset only
    return cast(
        "Compiled",
        make(tuple(translate.used_functions), tuple(translate.used_operators), _attribute),
    )


def _arguments(*names: str) -> ast.arguments:
    return ast.arguments(
        posonlyargs=[],
        args=[ast.arg(n) for n in names],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )


class CompiledEvaluator:
    """A stream map's ``_eval`` that runs compiled expressions and falls back to singer-sdk's."""

    def __init__(self, stream_map: CustomStreamMap) -> None:
        self._interpreted: Callable[..., Any] = stream_map._eval  # noqa: SLF001  the authority
        self._config = stream_map.map_config
        evaluator = stream_map.expr_evaluator
        self._functions: Mapping[str, Any] = evaluator.functions
        self._operators: Mapping[type, Any] = evaluator.operators
        # id of a parsed expression -> (the tree, kept so its id stays its own; compiled or None)
        self._compiled: dict[int, tuple[ast.AST, Compiled | None]] = {}

    def __call__(
        self, expr: str, expr_parsed: ast.Expr, record: dict[str, Any], property_name: str | None
    ) -> Any:  # noqa: ANN401  whatever the expression gives
        """What singer-sdk's ``CustomStreamMap._eval`` returns for the same arguments."""
        entry = self._compiled.get(id(expr_parsed))
        if entry is None or entry[0] is not expr_parsed:
            try:
                function: Compiled | None = compile_expression(
                    expr_parsed, self._functions, self._operators
                )
            except NotCompiledError:
                function = None
            entry = self._compiled[id(expr_parsed)] = (expr_parsed, function)
        function = entry[1]
        if function is not None and type(record) is dict:
            try:
                return function(record, self._config)
            except Exception:  # noqa: BLE001, S110  singer-sdk evaluates it again and decides
                pass
        return self._interpreted(
            expr=expr, expr_parsed=expr_parsed, record=record, property_name=property_name
        )


def compile_stream_maps(stream_maps: Iterable[StreamMap]) -> None:
    """Give each custom stream map of ``stream_maps`` a :class:`CompiledEvaluator` (once)."""
    for stream_map in stream_maps:
        if isinstance(stream_map, CustomStreamMap) and not isinstance(
            vars(stream_map).get("_eval"), CompiledEvaluator
        ):
            stream_map._eval = CompiledEvaluator(stream_map)  # type: ignore[method-assign]  # noqa: SLF001
