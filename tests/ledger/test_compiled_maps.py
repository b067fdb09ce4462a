"""Compiled stream maps give what singer-sdk's evaluator gives, record by record, error by error.

Each case builds two singer-sdk mappers from the same stream maps, compiles one of them
(:func:`sync_ledger.compiled_maps.compile_stream_maps`), and compares what they make of the same
records: the transformed record, or the error's type and message.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from singer_sdk.mapper import CustomStreamMap, PluginMapper

from sandbox import contacts_data, moco_data
from sync_ledger.compiled_maps import CompiledEvaluator, compile_stream_maps

ROOT = Path(__file__).resolve().parents[2]
LOGGER = logging.getLogger("test-compiled-maps")


def project_config(plugin: str) -> dict[str, Any]:
    """``stream_maps`` and ``stream_map_config`` of ``plugin`` in this project's meltano.yml."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    (definition,) = [p for p in project["plugins"]["loaders"] if p["name"] == plugin]
    config = definition["config"]
    return {k: config[k] for k in ("stream_maps", "stream_map_config")}


def loose_schema(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"properties": {k: {} for r in records for k in r}}


class Counting:
    """Counts the calls singer-sdk's own evaluator gets behind a compiled map."""

    def __init__(self, evaluator: CompiledEvaluator) -> None:
        self.calls = 0
        inner = evaluator._interpreted

        def count(**kwargs: Any) -> Any:
            self.calls += 1
            return inner(**kwargs)

        evaluator._interpreted = count


def outcome(stream_map: CustomStreamMap, record: dict[str, Any]) -> Any:
    try:
        return ("record", stream_map.transform(copy.deepcopy(record)))
    except Exception as error:  # noqa: BLE001  compared with the other evaluator's
        cause = error.__cause__
        return ("error", type(error).__name__, str(error), type(cause).__name__, str(cause))


class _Total:
    """The fallback calls of several maps together."""

    def __init__(self, parts: list[Counting]) -> None:
        self._parts = parts

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self._parts)


def both_ways(
    config: dict[str, Any], stream: str, records: list[dict[str, Any]], key: list[str] | None = None
) -> tuple[list[Any], list[Any], _Total]:
    """What singer-sdk's evaluator and the compiled one make of ``records``; the fallback count.

    A stream with several maps (``__source__``) gives each record's outcomes in map order.
    """
    results = []
    counting: list[Counting] = []
    for compiled in (False, True):
        mapper = PluginMapper(plugin_config=copy.deepcopy(config), logger=LOGGER)
        mapper.register_raw_stream_schema(stream, loose_schema(records), key or ["id"])
        maps = [m for m in mapper.stream_maps[stream] if isinstance(m, CustomStreamMap)]
        assert maps
        if compiled:
            compile_stream_maps(mapper.stream_maps[stream])
            for stream_map in maps:
                evaluator = vars(stream_map)["_eval"]
                assert isinstance(evaluator, CompiledEvaluator)
                counting.append(Counting(evaluator))
        outcomes = [tuple(outcome(m, r) for m in maps) for r in records]
        results.append([o[0] if len(o) == 1 else o for o in outcomes])
    return results[0], results[1], _Total(counting)


MOCO = moco_data.generate(400, seed=7)
CRM = contacts_data.generate(300, seed=7, tasks=100, notes=100)


def moco_contacts() -> list[dict[str, Any]]:
    people = copy.deepcopy(MOCO["contacts"])
    # Variants the generated people may lack: no email or phone at all, a tombstone, a tag
    # filter's tags, addresses of one line and none, a company without a name.
    people[0].update(work_email="", home_email="", work_phone="", mobile_phone="")
    people[1]["_sdc_deleted_at"] = "2026-12-01T00:00:00Z"
    people[2].update(tags=["vip", "moco"], work_address="Street 1", home_address="")
    people[3].update(work_address="", home_address="Home 2\n10115 Berlin Mitte\nGermany")
    people[4].update(work_address=None, home_address=None, tags=None)
    people[5].update(company={"id": 1}, tags=["vip"])  # no company name: an error in both
    return people


@pytest.mark.parametrize("tagged", [[], ["vip"]])
def test_target_contacts_maps_of_this_project_give_what_singer_sdk_gives(tagged):
    config = project_config("target-contacts")
    config["stream_map_config"]["only_contacts_tagged"] = tagged
    people = moco_contacts()
    interpreted, compiled, counting = both_ways(config, "contacts", people)
    assert compiled == interpreted
    kept = [r for r in interpreted if r[0] == "record" and r[1] is not None]
    assert len(kept) > (300 if not tagged else 0)  # the filter passes most, or the tagged one
    assert interpreted[5][0] == "error"  # company['name'] of a company without one
    # singer-sdk evaluated only what failed compiled (the company without a name), not the rest
    assert 0 < counting.calls <= 2


def test_target_contacts_task_and_note_maps_give_what_singer_sdk_gives():
    config = project_config("target-contacts")
    todos = copy.deepcopy(MOCO["todos"])
    todos[0].update(due_date=None, completed=True)
    comments = [{**c, "text_plain": c.get("text", "")} for c in MOCO["comments"]]
    for stream, records, key in (("tasks", todos, ["taskId"]), ("notes", comments, ["notesId"])):
        interpreted, compiled, counting = both_ways(config, stream, records, key)
        assert compiled == interpreted
        assert all(r[0] == "record" for r in interpreted)
        assert counting.calls == 0


def test_target_moco_maps_of_this_project_give_what_singer_sdk_gives():
    config = project_config("target-moco")
    config["stream_map_config"]["followup_tag"] = "call back"  # the followups map, on
    for stream in ("contacts", "tasks", "notes", "appointments"):
        records = copy.deepcopy(CRM[stream])
        if stream == "contacts":
            records[0]["dateOfBirth"] = "1990-02-03T00:00:00.000Z"
            records[1]["tags"] = ["call back", "moco"]
        interpreted, compiled, _ = both_ways(config, stream, records)
        assert compiled == interpreted
        if stream == "contacts":  # two maps: the contact, and a follow-up when tagged
            assert all(r[0][0] == "record" for r in interpreted)
            assert interpreted[1][1][1]["title"].startswith("Follow up with ")
        else:
            assert all(r[0] == "record" for r in interpreted)


EDGE_RECORD: dict[str, Any] = {
    "id": 7,
    "name": "Ada",
    "get": "a field named like a method",
    "str": "a field named like a function",
    "nested": {"name": "inner", "list": [1, 2, 3], "items": ["i"]},
    "text": "a\nb c",
    "n": 5,
    "none": None,
    "items": ["x", "y"],
    "long": "x" * 60000,
}

# Each: what it checks. Every one is evaluated both ways on EDGE_RECORD and must agree.
EDGE_EXPRESSIONS = [
    "str(id)",  # a call names the evaluator's function even where a field has its name
    "str",  # a bare name is the field first
    "get",  # a field named like a method
    "record.get('name')",  # the method, not the field `get`
    "nested.name",  # attribute access falls back to the item
    "str(nested.items)[:19]",  # ... only where there is no attribute of that name
    "nested['list'][1:]",  # slices
    "nested.list[::-1][0]",
    "missing",  # an unknown name: singer-sdk's error
    "missing_function(1)",  # an unknown function: singer-sdk's error
    "nested.missing",  # an unknown attribute: singer-sdk's error
    "none or 'fallback'",  # and / or give their operand
    "name and n",
    "not none",
    "-n + 2 * n - n % 3 // 1",
    "n ** 2",
    "n ** 9999999",  # over simpleeval's power limit: its error
    "long + long",  # over simpleeval's length limit: its error
    "items * 3",
    "'x' in items",
    "'z' not in items",
    "n > 3",
    "1 < n < 9",  # a chain: left to singer-sdk
    "none is None",
    "n if n > 3 else -n",
    "[n, name, (1, 2), {1}, {'a': n}]",
    "{'k': v for v in items}",  # a comprehension: left to singer-sdk
    "[v.upper() for v in items]",
    "f'{name}!'",  # an f-string: left to singer-sdk
    "text.split('\\n')[1].split(' ')",
    "' '.join(items)",
    "md5(name)",
    "bool(items) and len(items)",  # len is no function of the evaluator: its error
    "int('x')",  # the function's own error
    "items.append('z')",  # changes the record: left to singer-sdk (which runs it)
    "name.__class__",  # forbidden attribute: singer-sdk's error
    "name.format(1)",  # forbidden method
    "datetime.datetime.now",  # a module's attribute through simpleeval's module wrapper
    "json.dumps(nested, sort_keys=True)",
    "config['c']",
    "config.get('missing', 'default')",
    "_['id'] + record['n']",
    "self",  # singer-sdk's own name: left to it
    "__stream_name__",
    "(1)(2)",  # a call of a non-name: singer-sdk's error
    "a = 1",  # a statement: singer-sdk's error
]


@pytest.mark.parametrize("expression", EDGE_EXPRESSIONS)
def test_an_edge_expression_means_what_singer_sdk_says(expression):
    config = {"stream_maps": {"s": {"out": expression}}, "stream_map_config": {"c": 3}}
    try:
        interpreted, compiled, _ = both_ways(config, "s", [EDGE_RECORD])
    except Exception as error:  # noqa: BLE001  a map singer-sdk refuses to build
        pytest.fail(f"{expression!r}: {error}")
    if expression == "datetime.datetime.now":  # a fresh bound method each time: compare kinds
        assert [r[0] for r in compiled] == [r[0] for r in interpreted]
        return
    assert compiled == interpreted, expression


def test_a_compiled_expression_runs_without_singer_sdk():
    config = {"stream_maps": {"s": {"out": "(work_email or home_email).lower()"}}}
    records = [{"id": i, "work_email": "", "home_email": f"A{i}@X.ORG"} for i in range(50)]
    interpreted, compiled, counting = both_ways(config, "s", records)
    assert compiled == interpreted
    assert compiled[3] == (
        "record",
        {"id": 3, "work_email": "", "home_email": "A3@X.ORG", "out": "a3@x.org"},
    )
    assert counting.calls == 0


def test_a_record_that_lacks_a_field_is_evaluated_by_singer_sdk():
    config = {"stream_maps": {"s": {"out": "email or 'none'"}}}
    records = [{"id": 1, "email": "a@b"}, {"id": 2}]
    interpreted, compiled, counting = both_ways(config, "s", records)
    assert compiled == interpreted
    assert compiled[0][1]["out"] == "a@b"
    assert compiled[1][0] == "error" and "email" in compiled[1][2] + compiled[1][4]
    assert counting.calls == 1


def test_maps_are_compiled_once_and_kept_when_a_target_sees_the_schema_again():
    config = {"stream_maps": {"s": {"out": "str(id)"}}}
    mapper = PluginMapper(plugin_config=config, logger=LOGGER)
    mapper.register_raw_stream_schema("s", {"properties": {"id": {}}}, ["id"])
    (stream_map,) = mapper.stream_maps["s"]
    compile_stream_maps([stream_map])
    first = vars(stream_map)["_eval"]
    compile_stream_maps([stream_map])
    assert vars(stream_map)["_eval"] is first
    assert stream_map.transform({"id": 4}) == {"id": 4, "out": "4"}
