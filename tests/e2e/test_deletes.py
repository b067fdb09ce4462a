"""Deletes end to end with `meltano run` against both sandboxes: the taps' tombstones, the
targets' opt-in delete_streams (set through the environment, as a JSON array) and their caps."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import requests

from moco_api.html import html_to_text

if TYPE_CHECKING:
    from tests.e2e.conftest import Pipeline

RECONCILE_MOCO = {"TAP_MOCO_RECONCILE_NOW": "true"}
FORWARD_DELETES = {"TARGET_CONTACTS_DELETE_STREAMS": '["notes", "tasks"]'}
# The sandboxes allow plenty: no waiting for the Contacts API's 100 requests per 10 s.
FAST = {
    "TARGET_CONTACTS_RATE_LIMIT_REQUESTS": "100000",
    "TARGET_CONTACTS_RATE_LIMIT_WINDOW_SECONDS": "1",
    "TAP_CONTACTS_RATE_LIMIT_REQUESTS": "100000",
    "TAP_CONTACTS_RATE_LIMIT_WINDOW_SECONDS": "1",
}


def _delete_in_moco_ui(pipe: Pipeline, path: str) -> None:
    """A hard delete as a person makes it (the web UI), not through the sync's API user."""
    requests.delete(f"{pipe.moco.url}/_sandbox/{path}", timeout=10).raise_for_status()


def _crm(pipe: Pipeline, kind: str) -> list[dict[str, Any]]:
    return list(pipe.contacts_state()[kind])


def _crm_bodies(pipe: Pipeline) -> Counter[str]:
    return Counter(n["body"] for n in _crm(pipe, "notes"))


def _crm_titles(pipe: Pipeline) -> Counter[str]:
    return Counter(t["title"] for t in _crm(pipe, "tasks"))


def _plain(comment: dict[str, Any]) -> str:
    """What target-contacts writes as the CRM note's body."""
    return html_to_text(comment.get("text")) or ""


def _linked_comments(pipe: Pipeline) -> list[dict[str, Any]]:
    """MOCO's manual comments on people whose CRM note body is not shared by another note."""
    bodies = _crm_bodies(pipe)
    return [
        c
        for c in pipe.moco_state()["comments"]
        if c["commentable_type"] == "Contact" and c["manual"] and bodies[_plain(c)] == 1
    ]


def _contact_todos(pipe: Pipeline) -> list[dict[str, Any]]:
    return [t for t in pipe.moco_state()["todos"] if t["todoable_type"] == "Contact"]


def _run_job(pipe: Pipeline, job: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``meltano run JOB`` with ``env``; each target's summary by name."""
    paths = {name: pipe.workdir / f"{name}-summary.json" for name in ("contacts", "moco")}
    for path in paths.values():
        path.unlink(missing_ok=True)
    pipe.meltano(
        "run",
        job,
        env={
            "TARGET_CONTACTS_SUMMARY_PATH": str(paths["contacts"]),
            "TARGET_MOCO_SUMMARY_PATH": str(paths["moco"]),
            **env,
        },
    )
    return {
        f"target-{name}": json.loads(path.read_text())
        for name, path in paths.items()
        if path.exists()
    }


@pytest.mark.timeout(900)  # five meltano runs, on a shared machine
def test_moco_deletes_reach_the_crm_only_where_on_and_an_emptied_list_trips_the_cap(
    pipeline: Pipeline,
) -> None:
    pipe = pipeline
    pipe.run(env=FAST)
    comments, todos = _linked_comments(pipe), _contact_todos(pipe)
    notes_before, tasks_before = _crm_bodies(pipe), _crm_titles(pipe)
    assert len(comments) >= 2
    assert len(todos) >= 2

    # Deletes off (the default): the tombstones reach target-contacts, which deletes nothing.
    _delete_in_moco_ui(pipe, f"comments/{comments[0]['id']}")
    _delete_in_moco_ui(pipe, f"todos/{todos[0]['id']}")
    off = pipe.run(env={**FAST, **RECONCILE_MOCO})
    assert (_crm_bodies(pipe), _crm_titles(pipe)) == (notes_before, tasks_before)
    assert "deleted" not in off["streams"]["notes"]
    assert "deleted" not in off["streams"]["tasks"]
    assert off["adds_up"] is True

    # On for notes and tasks: a comment deleted in MOCO (seen by the reconciliation pass the
    # listener forces after a delete webhook) and a to-do gone from the to-do list (seen by
    # every run) take their CRM note and task with them, and nothing else.
    _delete_in_moco_ui(pipe, f"comments/{comments[1]['id']}")
    _delete_in_moco_ui(pipe, f"todos/{todos[1]['id']}")
    on = pipe.run(env={**FAST, **RECONCILE_MOCO, **FORWARD_DELETES})
    assert on["streams"]["notes"]["deleted"] == 1
    assert on["streams"]["tasks"]["deleted"] == 1
    assert on["adds_up"] is True
    assert _crm_bodies(pipe) == notes_before - Counter([_plain(comments[1])])
    assert _crm_titles(pipe) == tasks_before - Counter([todos[1]["title"]])
    # The CRM contacts stay: deletes are per stream.
    contacts_before = len(_crm(pipe, "contacts"))
    assert contacts_before == len(pipe.moco_state()["contacts"])

    # MOCO answers empty lists (here: its data is gone): the pass reports every known record,
    # and the targets' caps (max_delete_share 50 %) stop the run before it deletes anything.
    requests.post(f"{pipe.moco.url}/_sandbox/reset", timeout=10).raise_for_status()
    pipe.clear_logs()
    capped = pipe.meltano(
        "run",
        "tap-moco",
        "target-contacts",
        env={
            **FAST,
            **RECONCILE_MOCO,
            "TARGET_CONTACTS_DELETE_STREAMS": '["contacts", "notes", "tasks"]',
        },
        check=False,
    )
    assert capped.returncode != 0
    assert "nothing was deleted" in capped.stderr + capped.stdout
    assert len(_crm(pipe, "contacts")) == contacts_before
    assert [r for r in pipe.contacts_writes() if r["method"] == "DELETE"] == []


@pytest.mark.timeout(900)  # three meltano runs, on a shared machine
def test_a_crm_note_deleted_through_the_api_leaves_moco_after_a_full_pass(
    pipeline: Pipeline,
) -> None:
    pipe = pipeline
    _run_job(pipe, "moco-to-contacts", FAST)
    _run_job(pipe, "contacts-to-moco", FAST)  # the reverse direction's first read: it knows them
    comment = _linked_comments(pipe)[0]
    note = next(n for n in _crm(pipe, "notes") if n["body"] == _plain(comment))
    comments_before = {c["id"] for c in pipe.moco_state()["comments"]}

    pipe.contacts_api("DELETE", f"/contacts/{note['contactId']}/notes/{note['id']}")
    # The run the listener starts after the NoteDelete webhook: a reconciliation and full pass.
    summaries = _run_job(
        pipe,
        "contacts-to-moco",
        {
            **FAST,
            "TAP_CONTACTS_RECONCILE_NOW": "true",
            "TARGET_MOCO_DELETE_STREAMS": '["notes", "tasks", "appointments"]',
        },
    )

    assert summaries["target-moco"]["streams"]["notes"]["deleted"] == 1
    assert {c["id"] for c in pipe.moco_state()["comments"]} == comments_before - {comment["id"]}
