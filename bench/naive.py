"""The baseline a user would otherwise have: a naive per-record sync, as a zap does it per event.

``python -m bench.naive --moco URL --contacts URL [--out result.json]``

- Reads MOCO page by page with no client-side rate limiter; a 429 is retried after 1 s (what
  moco-wrapper and most scripts do). To-dos and comments on contacts are read first (all pages),
  so that each person can be handled with its own children.
- For each person that has an e-mail or a phone (the same filter as the project's stream map):
  ``POST /contacts/upsert`` (the contact id comes from that answer), then one ``POST`` per to-do
  (task) and per comment (note) of that person. One request at a time; no ledger, no change
  detection, so a re-run sends every record again. A 429 from the Contacts API is also retried
  after 1 s.
- The field mapping is the one of ``meltano.yml`` (same fields, tag ``moco`` added), so both
  syncs write the same data.

Prints (and with ``--out`` writes) a JSON summary: records handled, requests sent per route,
429s seen, failures, and wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from http import HTTPStatus
from pathlib import Path
from typing import Any

import requests

from bench.harness import say

MOCO_HEADERS = {"Accept": "application/json"}
CONTACTS_HEADERS = {"Version": "2021-07-28", "Accept": "application/json"}


class NaiveSync:
    """One naive sync from a MOCO (sandbox) to a Contacts API (sandbox): see the module."""

    def __init__(
        self,
        moco: str,
        contacts: str,
        *,
        api_key: str,
        token: str,
        location: str,
        timeout: float = 60,
    ) -> None:
        self.moco = moco.rstrip("/") + "/api/v1"
        self.contacts = contacts.rstrip("/")
        self.location = location
        self.timeout = timeout
        self.moco_session = requests.Session()
        self.moco_session.headers.update(
            {**MOCO_HEADERS, "Authorization": f"Token token={api_key}"}
        )
        self.crm = requests.Session()
        self.crm.headers.update({**CONTACTS_HEADERS, "Authorization": f"Bearer {token}"})
        self.calls: Counter[str] = Counter()
        self.moco_calls = 0
        self.moco_429 = 0
        self.crm_429 = 0
        self.failures: Counter[str] = Counter()
        self.records: Counter[str] = Counter()

    # --- MOCO ----------------------------------------------------------------------------
    def moco_pages(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every record of a MOCO list, page by page; a 429 is retried after 1 s."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            while True:
                self.moco_calls += 1
                r = self.moco_session.get(
                    self.moco + path,
                    timeout=self.timeout,
                    params={**(params or {}), "page": page, "per_page": 100},
                )
                if r.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                    self.moco_429 += 1
                    time.sleep(1.0)
                    continue
                r.raise_for_status()
                break
            out.extend(r.json())
            if 'rel="next"' not in r.headers.get("Link", ""):
                return out
            page += 1

    # --- Contacts API ----------------------------------------------------------------------
    def post(self, route: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST to the Contacts API (429: again after 1 s); the answer, None when it failed."""
        while True:
            self.calls[route] += 1
            r = self.crm.post(self.contacts + path, json=body, timeout=self.timeout)
            if r.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                self.crm_429 += 1
                time.sleep(1.0)
                continue
            if r.status_code >= HTTPStatus.BAD_REQUEST:
                self.failures[f"{route} {r.status_code}"] += 1
                return None
            return r.json()

    # --- the sync ----------------------------------------------------------------------------
    @staticmethod
    def contact_body(person: dict[str, Any], location: str) -> dict[str, Any] | None:
        """The upsert body for a MOCO person (meltano.yml's mapping); None without e-mail/phone."""
        email = person.get("work_email") or person.get("home_email")
        phone = person.get("work_phone") or person.get("mobile_phone")
        if not (email or phone):
            return None
        address = person.get("work_address") or person.get("home_address") or ""
        lines = [*address.split("\n"), ""]
        city_line = lines[1].split(" ")
        company = person.get("company")
        body = {
            "locationId": location,
            "firstName": person.get("firstname"),
            "lastName": person.get("lastname"),
            "email": email,
            "phone": phone,
            "companyName": company.get("name") if company else None,
            "address1": lines[0] or None,
            "postalCode": city_line[0] or None,
            "city": " ".join(city_line[1:]) or None,
            "dateOfBirth": person.get("birthday"),
            "source": "MOCO",
            "tags": [*(person.get("tags") or []), "moco"],
        }
        return {k: v for k, v in body.items() if v not in (None, "")}

    def run(self) -> dict[str, Any]:
        """Sync everything once; returns the summary (records, calls per route, 429s, time)."""
        started = time.time()
        todos: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for todo in self.moco_pages("/todos"):
            if todo.get("todoable_type") == "Contact":
                todos[todo["todoable_id"]].append(todo)
        comments: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for comment in self.moco_pages("/comments", {"commentable_type": "Contact"}):
            comments[comment["commentable_id"]].append(comment)
        people = self.moco_pages("/contacts/people")
        read_done = time.time()
        for person in people:
            body = self.contact_body(person, self.location)
            if body is None:
                self.records["contacts_skipped"] += 1
                continue
            self.records["contacts"] += 1
            answer = self.post("POST /contacts/upsert", "/contacts/upsert", body)
            contact_id = ((answer or {}).get("contact") or {}).get("id")
            for todo in todos.get(person["id"], []):
                self.records["tasks"] += 1
                if contact_id:
                    self.post(
                        "POST /contacts/{id}/tasks",
                        f"/contacts/{contact_id}/tasks",
                        {
                            "title": todo.get("title") or "(untitled)",
                            "dueDate": todo.get("due_date") or todo.get("created_at"),
                            "completed": bool(todo.get("completed")),
                        },
                    )
            for comment in comments.get(person["id"], []):
                self.records["notes"] += 1
                if contact_id and comment.get("text"):
                    self.post(
                        "POST /contacts/{id}/notes",
                        f"/contacts/{contact_id}/notes",
                        {"body": comment["text"]},
                    )
        ended = time.time()
        return {
            "records": dict(self.records),
            "source_records": sum(v for k, v in self.records.items() if k != "contacts_skipped"),
            "calls": dict(self.calls),
            "calls_total": sum(self.calls.values()),
            "contacts_429": self.crm_429,
            "moco_requests": self.moco_calls,
            "moco_429": self.moco_429,
            "failures": dict(self.failures),
            "started": started,
            "read_seconds": round(read_done - started, 3),
            "wall_seconds": round(ended - started, 3),
        }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.naive``: run the naive sync and print its JSON summary."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.naive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--moco", required=True, help="MOCO (sandbox) root URL")
    parser.add_argument("--contacts", required=True, help="Contacts API (sandbox) root URL")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--location", default="sandbox-location")
    parser.add_argument("--out", help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    for url in (args.moco, args.contacts):
        if not url.startswith(("http://127.0.0.1", "http://localhost")):
            parser.error("the naive baseline only talks to the local sandboxes")
    result = NaiveSync(
        args.moco, args.contacts, api_key=args.api_key, token=args.token, location=args.location
    ).run()
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    say(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
