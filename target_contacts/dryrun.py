"""Dry runs: the same write rules, with writes recorded as a plan instead of sent.

:class:`DryRunClient` passes reads (duplicate search, task and note lists) to the real client, so
the plan foresees a duplicate answer exactly where a live run would get one, and records every
write as a planned call with a placeholder id. :class:`OverlayLedger` keeps this run's ledger
changes in memory on top of the real ledger, which a dry run never changes.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from contacts_api import client as routes
from contacts_api.errors import DuplicateContactError
from sync_ledger.overlay import OverlayLedger
from target_contacts.sync import ClientLike

__all__ = ["DryRunClient", "OverlayLedger"]

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from contacts_api.client import Route


class DryRunClient(ClientLike):
    """A Contacts API client that reads for real and only plans its writes."""

    def __init__(self, client: ClientLike, location_id: str) -> None:
        self._client = client
        self.location_id = location_id
        self.plan: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._counter = 0
        self._calls: Counter[str] = Counter()

    def _plan(
        self, route: Route, body: Mapping[str, Any], *, creates: bool = False, **ids: str
    ) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            entry = {
                "method": route.method,
                "path": route.path(**ids),
                "body": body,
                "placeholder_id": f"dry-run-{self._counter:06d}" if creates else None,
            }
            self.plan.append(entry)
            self._calls[route.key] += 1
            return entry

    def calls_by_route(self) -> Counter[str]:
        """Planned calls per "METHOD route-template", as the live client counts its calls."""
        with self._lock:
            return Counter(self._calls)

    # reads go to the real API
    @override
    def search_duplicate(
        self, *, email: str | None = None, phone: str | None = None
    ) -> dict[str, Any] | None:
        return self._client.search_duplicate(email=email, phone=phone)

    @override
    def search_contacts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._client.search_contacts(body)

    @override
    def get_contact(self, contact_id: str) -> dict[str, Any]:
        return self._client.get_contact(contact_id)

    @override
    def get_task(self, contact_id: str, task_id: str) -> dict[str, Any]:
        return self._client.get_task(contact_id, task_id)

    @override
    def get_note(self, contact_id: str, note_id: str) -> dict[str, Any]:
        return self._client.get_note(contact_id, note_id)

    @override
    def list_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        return [] if contact_id.startswith("dry-run-") else self._client.list_tasks(contact_id)

    @override
    def list_notes(self, contact_id: str) -> list[dict[str, Any]]:
        return [] if contact_id.startswith("dry-run-") else self._client.list_notes(contact_id)

    # deletes are planned too
    @override
    def delete_contact(self, contact_id: str) -> None:
        self._plan(routes.DELETE_CONTACT, {}, id=contact_id)

    @override
    def delete_task(self, contact_id: str, task_id: str) -> None:
        self._plan(routes.DELETE_TASK, {}, id=contact_id, taskId=task_id)

    @override
    def delete_note(self, contact_id: str, note_id: str) -> None:
        self._plan(routes.DELETE_NOTE, {}, id=contact_id, noteId=note_id)

    # writes are planned
    @override
    def create_contact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        planned = self._plan(routes.CREATE_CONTACT, payload, creates=True)
        for key in ("email", "phone"):
            if payload.get(key):
                found = self._client.search_duplicate(**{key: payload[key]})
                if found and found.get("id"):
                    # A live run sends this create too, and the API answers with the duplicate.
                    planned["expected_answer"] = f"400 duplicate of {found['id']}"
                    raise DuplicateContactError(
                        "dry run: the duplicate search found this contact",
                        contact_id=str(found["id"]),
                        matching_field=key,
                    )
        return {"id": planned["placeholder_id"]}

    @override
    def update_contact(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self._plan(routes.UPDATE_CONTACT, payload, id=contact_id)
        return {"id": contact_id}

    @override
    def upsert_contact(self, payload: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        self._plan(routes.UPSERT_CONTACT, payload)
        key = {k: payload[k] for k in ("email", "phone") if payload.get(k)}
        found = self._client.search_duplicate(**key) if key else None
        return found is None, {"id": (found or {}).get("id")}

    @override
    def add_tags(self, contact_id: str, tags: list[str]) -> list[str]:
        self._plan(routes.ADD_TAGS, {"tags": tags}, id=contact_id)
        return tags

    @override
    def create_task(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        planned = self._plan(routes.CREATE_TASK, payload, creates=True, id=contact_id)
        return {"id": planned["placeholder_id"]}

    @override
    def update_task(
        self, contact_id: str, task_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._plan(routes.UPDATE_TASK, payload, id=contact_id, taskId=task_id)
        return {"id": task_id}

    @override
    def set_task_completed(
        self, contact_id: str, task_id: str, *, completed: bool = True
    ) -> dict[str, Any]:
        self._plan(routes.COMPLETE_TASK, {"completed": completed}, id=contact_id, taskId=task_id)
        return {"id": task_id}

    @override
    def create_note(self, contact_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        planned = self._plan(routes.CREATE_NOTE, payload, creates=True, id=contact_id)
        return {"id": planned["placeholder_id"]}

    @override
    def update_note(
        self, contact_id: str, note_id: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._plan(routes.UPDATE_NOTE, payload, id=contact_id, noteId=note_id)
        return {"id": note_id}

    def write_plan(self, path: Path) -> None:
        """Write the planned calls to ``path`` as JSON lines, in the order they were planned."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for call in self.plan:
                fh.write(json.dumps(call, ensure_ascii=False, default=str) + "\n")
