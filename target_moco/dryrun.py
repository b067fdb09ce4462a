"""target-moco's dry run: the same write rules, with MOCO writes recorded as a plan.

:class:`DryRunMocoClient` passes reads (people lookups, comments) to the real client, so the plan
finds a person to link exactly where a live run would, and records every write as a planned call
with a placeholder id. The ledger is :class:`~sync_ledger.overlay.OverlayLedger`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from target_moco.sync import MocoClientLike

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from moco_api.client import PeopleCount

PLACEHOLDER = "dry-run-"


class DryRunMocoClient(MocoClientLike):
    """A MOCO client that reads for real and only plans its writes."""

    def __init__(self, client: MocoClientLike) -> None:
        self._client = client
        self.plan: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    def _planned(self, method: str, route: str, path: str, body: object, *, creates: bool) -> str:
        with self._lock:
            placeholder = f"{PLACEHOLDER}{len(self.plan) + 1:06d}" if creates else None
            self.plan.append(
                {"method": method, "path": path, "body": body, "placeholder_id": placeholder}
            )
            self._calls[f"{method} {route}"] += 1
            return placeholder or ""

    def calls_by_route(self) -> Counter[str]:
        """Planned calls per "METHOD route-template"."""
        with self._lock:
            return Counter(self._calls)

    def write_plan(self, path: Path) -> None:
        """Write the planned calls as JSON lines."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for call in self.plan:
                out.write(json.dumps(call, ensure_ascii=False, default=str) + "\n")

    # reads go to the real API (nothing exists behind a placeholder yet)
    @override
    def get_person(self, person_id: str) -> dict[str, Any]:
        if person_id.startswith(PLACEHOLDER):
            return {"id": person_id}
        return self._client.get_person(person_id)

    @override
    def find_people(self, **filters: str) -> list[dict[str, Any]]:
        return self._client.find_people(**filters)

    @override
    def count_people(self) -> PeopleCount:
        return self._client.count_people()

    @override
    def get_comment(self, comment_id: str) -> dict[str, Any]:
        if comment_id.startswith(PLACEHOLDER):
            return {"id": comment_id}
        return self._client.get_comment(comment_id)

    @override
    def comments_on(self, commentable_type: str, commentable_id: str) -> list[dict[str, Any]]:
        if commentable_id.startswith(PLACEHOLDER):
            return []
        return self._client.comments_on(commentable_type, commentable_id)

    # writes and deletes are planned
    @override
    def delete_person(self, person_id: str) -> None:
        path = f"/contacts/people/{person_id}"
        self._planned("DELETE", "/contacts/people/{id}", path, None, creates=False)

    @override
    def delete_comment(self, comment_id: str) -> None:
        self._planned("DELETE", "/comments/{id}", f"/comments/{comment_id}", None, creates=False)

    @override
    def create_person(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": self._planned("POST", "/contacts/people", "/contacts/people", body, creates=True)
        }

    @override
    def update_person(self, person_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        path = f"/contacts/people/{person_id}"
        self._planned("PUT", "/contacts/people/{id}", path, body, creates=False)
        return {"id": person_id}

    @override
    def add_tags(self, entity: str, record_id: str, tags: list[str]) -> list[str]:
        path = f"/taggings/{entity}/{record_id}"
        self._planned("PATCH", "/taggings/{entity}/{id}", path, {"tags": tags}, creates=False)
        return tags

    @override
    def create_comment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": self._planned("POST", "/comments", "/comments", body, creates=True)}

    @override
    def update_comment(self, comment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self._planned("PUT", "/comments/{id}", f"/comments/{comment_id}", body, creates=False)
        return {"id": comment_id}
