"""Reading a contact's tasks, notes and appointments ahead of the SDK asking for them.

The SDK syncs a contact's child streams one contact at a time, as each contact record passes; one
request after the other would leave most of the rate limit unused. :class:`ChildReader` starts the
reads of one page of contacts at once on a small thread pool (all of them taking their slots from
the one rate limiter), and the child streams take each contact's rows as its context arrives.
Memory stays bounded by one page of contacts.

Tasks have a location-wide read (``POST /locations/{locationId}/tasks/search``, scope
``locations/tasks.readonly``): with it, one search (``contactId`` filter, paged by
``searchAfter``) fetches the tasks of the whole page of contacts instead of one request per
contact. ``task_read``:

- ``auto``: the location-wide read when the token may use it; on a 401/403 from that route (or
  an OAuth token whose stored scopes lack it) tasks are read per contact, and the log says so.
- ``location``: the location-wide read only; a refusal stops the run naming the missing scope.
- ``per_contact``: ``GET /contacts/{contactId}/tasks`` for every contact.

Rows of either read become the same task records (``_id`` becomes ``id``; only the per-contact
fields are kept), so that switching paths emits nothing again. Notes and appointments have no
location-wide read: they are always per contact.
"""

from __future__ import annotations

import logging
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from contacts_api.client import TASKS_SCOPE
from contacts_api.errors import AuthError, UnexpectedAnswerError
from tap_contacts.pool import ReadAheadPool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from concurrent.futures import Future

    from contacts_api.client import ContactsClient

logger = logging.getLogger(__name__)

#: Rows per page of the location-wide task search ("limit: 500 works", §3.1).
TASK_SEARCH_LIMIT = 500
#: The fields of a task record (TaskSchema of the per-contact route), in both read paths.
TASK_FIELDS = ("id", "title", "body", "assignedTo", "dueDate", "completed", "contactId")
TASK_SEARCH_ROUTE = "POST /locations/{locationId}/tasks/search"


class TaskRead(str, Enum):
    """The ``task_read`` setting: which read the tasks stream uses."""

    AUTO = "auto"
    LOCATION = "location"
    PER_CONTACT = "per_contact"


class TaskPath(str, Enum):
    """The read the tasks stream actually uses (kept in state as ``task_read_path``)."""

    LOCATION = "location"
    PER_CONTACT = "per_contact"


class ChildReadError(Exception):
    """A read of one contact's children failed; ``error`` is the client's, ``kind`` the stream."""

    def __init__(self, kind: str, contact_id: str, error: Exception) -> None:
        super().__init__(str(error))
        self.kind = kind
        self.contact_id = contact_id
        self.error = error


class _FilterIgnoredError(Exception):
    """The task search answered tasks of contacts it was not asked about."""


def task_from_search_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A location task-search row as the per-contact route shapes a task."""
    task = {name: row.get(name) for name in TASK_FIELDS if name != "id"}
    task["id"] = row["_id"]
    if not isinstance(task.get("completed"), bool):
        task["completed"] = row.get("status") == "completed"
    return task


def task_from_contact_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A per-contact task row, reduced to the task fields."""
    return {name: row.get(name) for name in TASK_FIELDS}


class ChildReader:
    """Per-contact child reads started ahead of time; see the module docstring.

    ``kinds`` are the child streams to read (``tasks``, ``notes``, ``appointments``); the
    contacts stream sets them before the first :meth:`prefetch`.
    """

    def __init__(
        self,
        client: ContactsClient,
        *,
        concurrency: int,
        task_read: TaskRead,
        granted_scopes: frozenset[str] | None,
    ) -> None:
        self.client = client
        self.task_read = task_read
        self.kinds: tuple[str, ...] = ()
        self._pool = ReadAheadPool(concurrency, "tap-contacts-read")
        self._pending: dict[tuple[str, str], Future[Any]] = {}
        self._batches: dict[Future[Any], list[str]] = {}  # a location-wide read -> its contacts
        self.task_path = TaskPath.LOCATION
        self.task_path_reason = f"task_read is {task_read.value}"
        if task_read is TaskRead.PER_CONTACT:
            self.task_path = TaskPath.PER_CONTACT
        elif (
            task_read is TaskRead.AUTO
            and granted_scopes is not None
            and TASKS_SCOPE not in granted_scopes
        ):
            self.task_path = TaskPath.PER_CONTACT
            self.task_path_reason = (
                f"the stored OAuth token was not granted {TASKS_SCOPE} (task_read is auto)"
            )
        self._announced = False

    # --- what the streams call ------------------------------------------------------------
    def prefetch(self, contact_ids: Sequence[str]) -> None:
        """Start reading the children of ``contact_ids`` (one page), dropping older reads."""
        self.cancel()
        if not contact_ids or not self.kinds:
            return
        self._announce()
        ids = list(contact_ids)
        if "tasks" in self.kinds and self.task_path is TaskPath.LOCATION:
            batch = self._pool.submit(self._search_tasks, tuple(ids))
            self._batches[batch] = ids
            for contact_id in ids:
                self._pending["tasks", contact_id] = batch
        for contact_id in ids:  # contact by contact, in the order the SDK will ask
            for kind in self.kinds:
                if (kind, contact_id) not in self._pending:
                    self._pending[kind, contact_id] = self._submit_one(kind, contact_id)

    def take(self, kind: str, contact_id: str) -> list[dict[str, Any]]:
        """The children of one contact: the started read's rows, or read now if none was started.

        Raises :class:`ChildReadError` when the read failed.
        """
        future = self._pending.pop((kind, contact_id), None)
        if future is None:
            self._announce()
            if kind == "tasks" and self.task_path is TaskPath.LOCATION:
                future = self._pool.submit(self._search_tasks, (contact_id,))
                self._batches[future] = [contact_id]
            else:
                future = self._submit_one(kind, contact_id)
        try:
            result = future.result()
        except (AuthError, _FilterIgnoredError) as exc:
            if kind != "tasks" or not self._is_task_search(future, exc):
                raise ChildReadError(kind, contact_id, exc) from exc
            if self.task_read is TaskRead.LOCATION and isinstance(exc, AuthError):
                hint = AuthError(
                    f"{exc} (task_read is location: set it to auto or per_contact to read tasks "
                    "per contact instead)",
                    status=exc.status,
                    method=exc.method,
                    path=exc.path,
                )
                raise ChildReadError(kind, contact_id, hint) from exc
            self._fall_back(future, exc)
            return self.take(kind, contact_id)
        except Exception as exc:
            raise ChildReadError(kind, contact_id, exc) from exc
        if isinstance(result, dict):  # a location-wide batch: {contact id: tasks}
            return list(result.pop(contact_id, []))
        return list(result)

    def cancel(self) -> None:
        """Forget the reads not taken (their results are not needed any more)."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._batches.clear()

    def close(self) -> None:
        """Cancel what is pending and stop the threads (without waiting for running reads)."""
        self.cancel()
        self._pool.shutdown()

    # --- reads ----------------------------------------------------------------------------
    def _submit_one(self, kind: str, contact_id: str) -> Future[Any]:
        read: Callable[[str], list[dict[str, Any]]] = {
            "tasks": self._tasks_of,
            "notes": self.client.list_notes,
            "appointments": self.client.list_appointments,
        }[kind]
        return self._pool.submit(read, contact_id)

    def _tasks_of(self, contact_id: str) -> list[dict[str, Any]]:
        return [task_from_contact_row(row) for row in self.client.list_tasks(contact_id)]

    def _search_tasks(self, contact_ids: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
        """The tasks of ``contact_ids`` by the location-wide search, grouped by contact."""
        wanted = set(contact_ids)
        groups: dict[str, list[dict[str, Any]]] = {}
        body: dict[str, Any] = {"contactId": list(contact_ids), "limit": TASK_SEARCH_LIMIT}
        cursors: set[str] = set()
        while True:
            rows = self.client.search_location_tasks(body)
            for row in rows:
                contact_id = row.get("contactId")
                if contact_id not in wanted:
                    raise _FilterIgnoredError(
                        f"{TASK_SEARCH_ROUTE} answered a task of contact {contact_id!r}, which "
                        "it was not asked about: it ignores the contactId filter"
                    )
                if row.get("deleted") is True:
                    continue  # the per-contact read does not show deleted tasks either
                groups.setdefault(str(contact_id), []).append(task_from_search_row(row))
            if len(rows) < TASK_SEARCH_LIMIT:
                return groups
            cursor = rows[-1].get("searchAfter")
            if not isinstance(cursor, list) or repr(cursor) in cursors:
                raise UnexpectedAnswerError(
                    f"{TASK_SEARCH_ROUTE} answered a full page whose last task has "
                    f"{'the same' if isinstance(cursor, list) else 'no'} searchAfter "
                    "cursor; stopping instead of looping. Set task_read to per_contact and "
                    "report this.",
                    method="POST",
                    path=TASK_SEARCH_ROUTE.split(" ", 1)[1],
                )
            cursors.add(repr(cursor))
            body = {**body, "searchAfter": cursor}

    # --- the location-wide task read and its fallback ------------------------------------------
    def _is_task_search(self, future: Future[Any], exc: Exception) -> bool:
        if future not in self._batches or self.task_path is not TaskPath.LOCATION:
            return False
        if isinstance(exc, _FilterIgnoredError):
            return True
        status = getattr(exc, "status", None)
        return status in (
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.FORBIDDEN,
        )

    def _fall_back(self, failed: Future[Any], exc: Exception) -> None:
        """Read tasks per contact from now on, restarting the failed batch's reads."""
        self.task_path = TaskPath.PER_CONTACT
        self.task_path_reason = str(exc)
        logger.warning(
            "tasks: the location-wide read cannot be used (%s); reading tasks per contact "
            "instead (GET /contacts/{contactId}/tasks, one request per contact). Grant %s to "
            "read them location-wide.",
            exc,
            TASKS_SCOPE,
        )
        for contact_id in self._batches.pop(failed, []):
            if self._pending.get(("tasks", contact_id)) is failed:
                self._pending["tasks", contact_id] = self._submit_one("tasks", contact_id)

    def _announce(self) -> None:
        if self._announced or "tasks" not in self.kinds:
            return
        self._announced = True
        if self.task_path is TaskPath.LOCATION:
            logger.info(
                "tasks: reading location-wide (%s, %s), a page of contacts per search (%s)",
                TASK_SEARCH_ROUTE,
                TASKS_SCOPE,
                self.task_path_reason,
            )
        else:
            logger.info(
                "tasks: reading per contact (GET /contacts/{contactId}/tasks): %s",
                self.task_path_reason,
            )

    def pending_kinds(self) -> Iterable[tuple[str, str]]:
        """The (kind, contact id) reads started and not yet taken (for tests and logs)."""
        return tuple(self._pending)
