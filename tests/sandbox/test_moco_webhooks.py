"""MOCO's web hooks in the sandbox: the management API (§7) and signed, asynchronous delivery.

A tiny receiver on 127.0.0.1 records what the sandbox POSTs; every test checks the signature
the way a receiver must (HMAC-SHA256 over the exact raw body, the secret used as ASCII).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from sandbox.moco_webhooks import DEFAULT_WEBHOOK_SECRET, HOOK_KEYS, WebhookOptions, sign
from tests.sandbox.clock import FakeClock
from tests.sandbox.receiver import Received, Receiver
from tests.sandbox.test_moco_sandbox import AUTH, REPO_ROOT, api, seed
from tests.timing import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

API_USER, WEB_UI_USER = "933662266", "933662267"
QUICK = WebhookOptions(jitter=0.0, backoff=0.0)


@pytest.fixture
def moco(moco_sandbox_factory: Callable[..., RunningSandbox]) -> RunningSandbox:
    """A MOCO sandbox that delivers at once and retries without waiting."""
    return moco_sandbox_factory(rate_limit=100_000, webhooks=WebhookOptions(**vars(QUICK)))


def subscribe(sandbox: RunningSandbox, target: str, event: str, url: str) -> dict[str, Any]:
    body = {"target": target, "event": event, "hook": url}
    response = api(sandbox, "POST", "/account/web_hooks", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def configure(sandbox: RunningSandbox, **settings: Any) -> requests.Response:
    return requests.post(f"{sandbox.url}/_sandbox/config", json=settings, timeout=5)


def settled(
    sandbox: RunningSandbox, count: int, *, idle: bool = True, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The delivery log once it has ``count`` attempts and (``idle``) nothing is queued or in
    flight."""
    url = f"{sandbox.url}/_sandbox/webhook_deliveries"

    def done() -> bool:
        response = requests.get(url, timeout=5)
        pending = response.headers["X-Pending-Deliveries"]
        return len(response.json()) >= count and (pending == "0" or not idle)

    assert wait_for(done, timeout), requests.get(url, timeout=5).json()
    return requests.get(url, timeout=5).json()


def signed(received: Received, secret: str = DEFAULT_WEBHOOK_SECRET) -> bool:
    """What a receiver checks: lower-case hex HMAC-SHA256 of the raw body, key as ASCII."""
    expected = hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers["X-Moco-Signature"], expected)


def test_the_signature_is_the_documented_one() -> None:
    body = b'{"id":111,"description":"a description"}'
    assert (
        sign("1d608b9d72219b90ff2393a1d3ee0ac0", body)
        == "bf027a86207ef1ca1cb76f5a536b41a14287ab1a0fd5b33bfe86924bc2f48fd1"
    )
    assert re.fullmatch(r"[0-9a-f]{32}", DEFAULT_WEBHOOK_SECRET)


# --- the management API (§7) -------------------------------------------------------------------


def test_web_hooks_are_created_validated_and_listed_as_documented(moco: RunningSandbox) -> None:
    assert requests.get(f"{moco.url}/api/v1/account/web_hooks", timeout=5).status_code == 401
    missing = api(moco, "POST", "/account/web_hooks", json={})
    assert missing.status_code == 422
    assert missing.json() == {
        "errors": {
            "target": ["can't be blank"],
            "event": ["can't be blank"],
            "hook": ["can't be blank"],
        }
    }
    for body, field in (
        ({"target": "Todo", "event": "create", "hook": "https://e.org/h"}, "target"),
        ({"target": "Tagging", "event": "update", "hook": "https://e.org/h"}, "target"),
        ({"target": "Contact", "event": "archive", "hook": "https://e.org/h"}, "event"),
        (
            {"target": "Purchase::BookkeepingExport", "event": "update", "hook": "https://e.org/"},
            "event",
        ),
        ({"target": "Contact", "event": "create", "hook": "not a url"}, "hook"),
        ({"target": "Contact", "event": "create", "hook": 5}, "hook"),
    ):
        refused = api(moco, "POST", "/account/web_hooks", json=body)
        assert refused.status_code == 422, body
        assert list(refused.json()["errors"]) == [field], body

    first = subscribe(moco, "Contact", "create", "https://example.org/moco")
    assert list(first) == list(HOOK_KEYS)
    assert first["disabled"] is False and first["disabled_at"] is None
    assert first["created_at"] == first["updated_at"]
    second = subscribe(moco, "User::WorkTimeAdjustment", "delete", "https://example.org/u")
    listed = api(moco, "GET", "/account/web_hooks", params={"per_page": 1})
    assert listed.json() == [first]
    assert (listed.headers["X-Page"], listed.headers["X-Total"]) == ("1", "2")
    assert 'rel="next"' in listed.headers["Link"]
    only = api(moco, "GET", "/account/web_hooks", params={"ids": str(second["id"])}).json()
    assert only == [second]
    later = api(moco, "GET", "/account/web_hooks", params={"updated_after": "2999-01-01T00:00:00Z"})
    assert later.json() == [] and later.headers["X-Total"] == "0"
    assert api(moco, "GET", f"/account/web_hooks/{first['id']}").json() == first
    assert api(moco, "GET", "/account/web_hooks/1").status_code == 404


def test_only_hook_changes_disable_enable_are_idempotent_and_delete_answers_the_hook(
    moco: RunningSandbox,
) -> None:
    hook = subscribe(moco, "Contact", "update", "https://example.org/v1")
    path = f"/account/web_hooks/{hook['id']}"
    put = api(
        moco,
        "PUT",
        path,
        json={"hook": "https://example.org/v2", "target": "Company", "event": "delete"},
    ).json()
    assert (put["target"], put["event"], put["hook"]) == (
        "Contact",
        "update",
        "https://example.org/v2",
    )
    patched = api(moco, "PATCH", path, json={"hook": "https://example.org/v3"}).json()
    assert patched["hook"] == "https://example.org/v3"
    assert api(moco, "PATCH", path, json={"hook": "ftp:/x"}).status_code == 422
    assert api(moco, "PUT", path, json={"target": "Company"}).json() == patched  # ignored

    disabled = api(moco, "PUT", f"{path}/disable").json()
    assert disabled["disabled"] is True and re.fullmatch(r"\S+Z", disabled["disabled_at"])
    assert api(moco, "PUT", f"{path}/disable").json() == disabled  # idempotent
    enabled = api(moco, "PUT", f"{path}/enable").json()
    assert enabled["disabled"] is False and enabled["disabled_at"] is None
    assert api(moco, "PUT", f"{path}/enable").json() == enabled

    deleted = api(moco, "DELETE", path)
    assert deleted.status_code == 200 and deleted.json() == enabled
    assert api(moco, "GET", path).status_code == 404
    assert api(moco, "PUT", f"{path}/enable").status_code == 404


# --- what is delivered -------------------------------------------------------------------------


def test_api_writes_are_delivered_as_get_serialises_them_signed_with_moco_headers(
    moco: RunningSandbox,
) -> None:
    with Receiver() as receiver:
        for target, event in (
            ("Contact", "create"),
            ("Contact", "update"),
            ("Contact", "delete"),
            ("Comment", "create"),
            ("Comment", "update"),
            ("Comment", "delete"),
            ("Company", "create"),
        ):
            subscribe(moco, target, event, f"{receiver.url}/{target}/{event}")
        subscribe(moco, "Deal", "create", f"{receiver.url}/Deal/create")  # never fires here
        before = int(time.time() * 1000)
        contact = api(
            moco,
            "POST",
            "/contacts/people",
            json={
                "lastname": "Müßig",
                "gender": "M",
                "tags": ["VIP"],
                "custom_properties": {"HL-ID": "hl-1"},
            },
        ).json()
        as_created = api(moco, "GET", f"/contacts/people/{contact['id']}").content
        api(moco, "PUT", f"/contacts/people/{contact['id']}", json={"title": "Dr."})
        as_updated = api(moco, "GET", f"/contacts/people/{contact['id']}").content
        note = api(
            moco,
            "POST",
            "/comments",
            json={"commentable_type": "Contact", "commentable_id": contact["id"], "text": "Hi"},
        ).json()
        note_created = api(moco, "GET", f"/comments/{note['id']}").content
        api(moco, "PUT", f"/comments/{note['id']}", json={"text": "<div>Hallo</div>"})
        note_updated = api(moco, "GET", f"/comments/{note['id']}").content
        api(moco, "DELETE", f"/comments/{note['id']}")
        api(moco, "DELETE", f"/contacts/people/{contact['id']}")
        api(moco, "POST", "/companies", json={"name": "Neu AG", "type": "organization"})
        after = int(time.time() * 1000)
        receiver.wait_for(7)
        log = settled(moco, 7)

    got = {r.path: r for r in receiver.received}
    assert sorted(got) == sorted(
        f"/{t}/{e}"
        for t, e in (
            ("Contact", "create"),
            ("Contact", "update"),
            ("Contact", "delete"),
            ("Comment", "create"),
            ("Comment", "update"),
            ("Comment", "delete"),
            ("Company", "create"),
        )
    )
    # create and update: byte for byte what GET answered right after the change
    assert got["/Contact/create"].body == as_created
    assert got["/Contact/update"].body == as_updated
    assert got["/Comment/create"].body == note_created
    assert got["/Comment/update"].body == note_updated
    # delete: the id, plus custom_properties where the record has them (OA)
    assert got["/Contact/delete"].json() == {
        "id": contact["id"],
        "custom_properties": {"HL-ID": "hl-1"},
    }
    assert got["/Comment/delete"].json() == {"id": note["id"]}
    assert got["/Company/create"].json()["name"] == "Neu AG"
    for path, received in got.items():
        target, event = path.strip("/").split("/")
        headers = received.headers
        assert signed(received), path
        assert headers["X-Moco-Target"] == target and headers["X-Moco-Event"] == event
        assert before <= int(headers["X-Moco-Timestamp"]) <= after
        assert headers["X-Moco-User-Id"] == API_USER
        assert headers["X-Moco-Origin"] == "api"
        assert headers["X-Moco-Account-Url"] == moco.url
        assert headers["Content-Type"].startswith("application/json")
    assert {e["outcome"] for e in log} == {"delivered"}
    entry = next(e for e in log if e["target"] == "Contact" and e["event"] == "delete")
    assert entry["record_id"] == contact["id"] and entry["status"] == 200
    assert entry["attempt"] == 1 and entry["url"] == f"{receiver.url}/Contact/delete"
    assert (
        entry["headers"]["X-Moco-Signature"] == got["/Contact/delete"].headers["X-Moco-Signature"]
    )
    assert {"hook", "enqueued_at", "started_at", "finished_at", "error"} <= set(entry)


def test_web_ui_edits_come_from_another_user_with_an_empty_origin(moco: RunningSandbox) -> None:
    with Receiver() as receiver:
        for target, event in (
            ("Contact", "create"),
            ("Contact", "update"),
            ("Contact", "delete"),
            ("Comment", "create"),
            ("Company", "update"),
        ):
            subscribe(moco, target, event, f"{receiver.url}/{target}/{event}")
        web = f"{moco.url}/_sandbox"
        made = requests.post(f"{web}/people", json={"lastname": "Web", "gender": "F"}, timeout=5)
        assert made.status_code == 200
        person = made.json()
        assert person["user"]["id"] == int(WEB_UI_USER)  # the web UI user is responsible
        assert requests.put(f"{web}/people/{person['id']}", json={"title": "Dr."}, timeout=5).ok
        assert requests.patch(f"{web}/people/{person['id']}", json={"gender": "F"}, timeout=5).ok
        note = requests.post(
            f"{web}/comments",
            json={"commentable_type": "Contact", "commentable_id": person["id"], "text": "x"},
            timeout=5,
        ).json()
        assert note["user"]["id"] == int(WEB_UI_USER)
        bad = requests.post(f"{web}/people", json={"lastname": "No gender"}, timeout=5)
        assert bad.status_code == 422
        company = api(moco, "POST", "/companies", json={"name": "A", "type": "supplier"}).json()
        assert requests.put(f"{web}/companies/{company['id']}", json={"name": "B"}, timeout=5).ok
        assert requests.delete(f"{web}/people/{person['id']}", timeout=5).status_code == 200
        received = receiver.wait_for(5)
        settled(moco, 5)
    assert sorted(r.path for r in received) == [
        "/Comment/create",
        "/Company/update",
        "/Contact/create",
        "/Contact/delete",
        "/Contact/update",  # the PATCH changed nothing: no second update
    ]
    for r in received:
        assert signed(r)
        assert r.headers["X-Moco-User-Id"] == WEB_UI_USER
        assert r.headers["X-Moco-Origin"] == ""
    log = requests.get(f"{moco.url}/_sandbox/requests", timeout=5).json()
    assert [e["path"] for e in log] == ["/api/v1/account/web_hooks"] * 5 + [
        "/api/v1/companies"
    ]  # web UI edits are not API requests


def test_tagging_changes_send_the_contacts_update(moco: RunningSandbox) -> None:
    seed(moco, contacts=[{"id": 7, "lastname": "Keller", "tags": ["VIP"]}])
    with Receiver() as receiver:
        subscribe(moco, "Contact", "update", f"{receiver.url}/update")
        api(moco, "PATCH", "/taggings/Contact/7", json={"tags": ["VIP"]})  # no change
        api(moco, "PATCH", "/taggings/Contact/7", json={"tags": ["Lead"]})
        (update,) = receiver.wait_for(1)
        settled(moco, 1)
    assert update.json()["tags"] == ["Lead", "VIP"] and signed(update)
    assert len(receiver.received) == 1


def test_deleting_a_contact_also_reports_its_comments_gone(moco: RunningSandbox) -> None:
    seed(
        moco,
        contacts=[{"id": 7, "lastname": "Keller"}],
        comments=[
            {"id": 70, "commentable_type": "Contact", "commentable_id": 7, "text": "a"},
            {"id": 71, "commentable_type": "Contact", "commentable_id": 7, "text": "b"},
        ],
    )
    with Receiver() as receiver:
        subscribe(moco, "Comment", "delete", f"{receiver.url}/comment")
        subscribe(moco, "Contact", "delete", f"{receiver.url}/contact")
        api(moco, "DELETE", "/contacts/people/7")
        receiver.wait_for(3)
    assert sorted(r.json()["id"] for r in receiver.at("/comment")) == [70, 71]
    assert [r.json() for r in receiver.at("/contact")] == [{"id": 7, "custom_properties": {}}]


def test_disabled_and_deleted_hooks_get_nothing(moco: RunningSandbox) -> None:
    with Receiver() as receiver:
        off = subscribe(moco, "Contact", "create", f"{receiver.url}/off")
        gone = subscribe(moco, "Contact", "create", f"{receiver.url}/gone")
        subscribe(moco, "Contact", "create", f"{receiver.url}/on")
        api(moco, "PUT", f"/account/web_hooks/{off['id']}/disable")
        api(moco, "DELETE", f"/account/web_hooks/{gone['id']}")
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        receiver.wait_for(1)
        settled(moco, 1)
    assert [r.path for r in receiver.received] == ["/on"]


# --- asynchronous, retried, disabled, out of order, on this machine only ---------------------


def test_the_api_answers_before_the_delivery_is_done(moco: RunningSandbox) -> None:
    with Receiver() as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        receiver.hold()  # the receiver takes the delivery and does not answer yet
        made = api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        assert made.status_code == 200
        assert wait_for(lambda: receiver.waiting == 1, 10)
        pending = requests.get(f"{moco.url}/_sandbox/webhook_deliveries", timeout=5)
        assert pending.json() == [] and pending.headers["X-Pending-Deliveries"] == "1"
        receiver.release()
        (entry,) = settled(moco, 1)
    assert entry["outcome"] == "delivered"


def test_failures_are_retried_with_exponential_backoff_on_the_sandbox_clock(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    moco = moco_sandbox_factory(
        rate_limit=0,
        clock=clock,
        webhooks=WebhookOptions(jitter=0.0, backoff=10.0, max_attempts=4),
    )
    with Receiver(statuses=(500, 502, 200)) as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        receiver.wait_for(1)
        first = settled(moco, 1, idle=False)  # the retry is waiting
        assert [(e["status"], e["outcome"], e["next_attempt_in"]) for e in first] == [
            (500, "retry", 10.0)
        ]
        clock.advance(9.9)
        assert not wait_for(lambda: len(receiver.received) > 1, 0.3)  # not before its time
        clock.advance(0.1)
        receiver.wait_for(2)
        second = settled(moco, 2, idle=False)[-1]
        assert (second["status"], second["attempt"], second["next_attempt_in"]) == (502, 2, 20.0)
        clock.advance(20.0)
        received = receiver.wait_for(3)
        log = settled(moco, 3)
    assert [e["outcome"] for e in log] == ["retry", "retry", "delivered"]
    assert len({r.body for r in received}) == 1  # the same event, byte for byte
    assert len({r.headers["X-Moco-Timestamp"] for r in received}) == 1  # the event's time
    assert all(signed(r) for r in received)


def test_a_receiver_slower_than_the_timeout_has_failed(moco: RunningSandbox) -> None:
    assert configure(moco, webhook_timeout=0.2, webhook_max_attempts=2).status_code == 200
    with Receiver(delay=1.0) as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        log = settled(moco, 2)
    assert [(e["status"], e["outcome"]) for e in log] == [(None, "retry"), (None, "failed")]
    assert all("timed out" in e["error"] for e in log)


def test_a_streak_of_failures_disables_the_hook_until_it_is_enabled(moco: RunningSandbox) -> None:
    assert configure(moco, webhook_disable_after=3, webhook_max_attempts=10).status_code == 200
    with Receiver(statuses=(500, 500, 500, 200)) as receiver:
        hook = subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        log = settled(moco, 3)
        assert [e["outcome"] for e in log] == ["retry", "retry", "failed"]
        after = api(moco, "GET", f"/account/web_hooks/{hook['id']}").json()
        assert after["disabled"] is True and after["disabled_at"] is not None
        api(moco, "POST", "/contacts/people", json={"lastname": "B", "gender": "U"})
        assert len(settled(moco, 3)) == 3 and len(receiver.received) == 3  # nothing sent now
        api(moco, "PUT", f"/account/web_hooks/{hook['id']}/enable")
        api(moco, "POST", "/contacts/people", json={"lastname": "C", "gender": "U"})
        log = settled(moco, 4)
    assert log[-1]["outcome"] == "delivered"
    assert receiver.received[-1].json()["lastname"] == "C"


def test_a_retry_for_a_hook_disabled_meanwhile_is_dropped(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    clock = FakeClock()
    moco = moco_sandbox_factory(
        rate_limit=0, clock=clock, webhooks=WebhookOptions(jitter=0.0, backoff=10.0)
    )
    with Receiver(statuses=(500, 200)) as receiver:
        hook = subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        settled(moco, 1, idle=False)
        api(moco, "PUT", f"/account/web_hooks/{hook['id']}/disable")
        clock.advance(10.0)
        log = settled(moco, 2)
    assert [e["outcome"] for e in log] == ["retry", "dropped"]
    assert len(receiver.received) == 1


def test_jitter_can_reorder_deliveries_and_the_timestamp_restores_the_order(
    moco: RunningSandbox,
) -> None:
    assert configure(moco, webhook_jitter=0.5).status_code == 200
    with Receiver() as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        created = [
            api(moco, "POST", "/contacts/people", json={"lastname": f"N{n}", "gender": "U"}).json()[
                "id"
            ]
            for n in range(12)
        ]
        received = receiver.wait_for(12)
    arrived = [r.json()["id"] for r in received]
    assert sorted(arrived) == sorted(created)
    assert arrived != created  # 12 events with up to 0.5 s jitter each: never all in order
    stamps = {r.json()["id"]: int(r.headers["X-Moco-Timestamp"]) for r in received}
    assert [stamps[i] for i in created] == sorted(stamps[i] for i in created)


def test_hooks_off_this_machine_are_refused_and_never_contacted(
    moco: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts: list[str] = []  # every host a webhook worker connected to
    original = http.client.HTTPConnection.connect

    def connect(self: http.client.HTTPConnection) -> None:
        if threading.current_thread().name.startswith("moco-webhooks-"):
            hosts.append(self.host)
        original(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", connect)
    with Receiver() as receiver:
        for url in (
            "https://example.org/moco",
            "http://203.0.113.7:8080/hook",
            "http://localhost.example.org/hook",
            receiver.url,
        ):
            subscribe(moco, "Contact", "create", url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        log = settled(moco, 4)
    outcomes = {e["url"]: e["outcome"] for e in log}
    assert outcomes == {
        "https://example.org/moco": "refused",
        "http://203.0.113.7:8080/hook": "refused",
        "http://localhost.example.org/hook": "refused",
        receiver.url: "delivered",
    }
    refused = [e for e in log if e["outcome"] == "refused"]
    assert all("never sends traffic off the machine" in e["error"] for e in refused)
    assert all(e["status"] is None and e["attempt"] == 1 for e in refused)  # no retries
    assert hosts == ["127.0.0.1"]


# --- settings, reset, shutdown, command line ---------------------------------------------------


def test_settings_change_at_run_time_and_bad_ones_change_nothing(moco: RunningSandbox) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    for bad in (
        {"webhook_secret": "short"},
        {"webhook_secret": secret.upper()},
        {"webhook_jitter": -1},
        {"webhook_max_attempts": 0},
        {"webhook_max_attempts": 1.5},
        {"webhook_timeout": "10"},
        {"webhook_secret": secret, "webhook_colour": "red"},
        {"webhook_secret": secret, "rate_limit": "many"},
    ):
        assert configure(moco, **bad).status_code == 422, bad
    with Receiver() as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        receiver.wait_for(1)
        assert signed(receiver.received[0])  # still the default secret
        response = configure(moco, webhook_secret=secret, webhook_account_url="acme")
        assert response.status_code == 200
        api(moco, "POST", "/contacts/people", json={"lastname": "B", "gender": "U"})
        new = receiver.wait_for(2)[1]
    assert signed(new, secret) and not signed(new)
    assert new.headers["X-Moco-Account-Url"] == "acme"


def test_reset_forgets_hooks_and_deliveries_and_stopping_stops_the_workers(
    moco_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    moco = moco_sandbox_factory(rate_limit=0, webhooks=WebhookOptions(jitter=0.0, workers=2))
    with Receiver() as receiver:
        subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "A", "gender": "U"})
        settled(moco, 1)
        workers = [t for t in threading.enumerate() if t.name.startswith("moco-webhooks-")]
        assert len(workers) >= 2
        assert requests.post(f"{moco.url}/_sandbox/reset", timeout=5).ok
        assert api(moco, "GET", "/account/web_hooks").json() == []
        assert requests.get(f"{moco.url}/_sandbox/webhook_deliveries", timeout=5).json() == []
        subscribe(moco, "Contact", "create", receiver.url)
        api(moco, "POST", "/contacts/people", json={"lastname": "B", "gender": "U"})
        settled(moco, 1)
        cleared = requests.delete(f"{moco.url}/_sandbox/webhook_deliveries", timeout=5)
        assert cleared.ok
        assert requests.get(f"{moco.url}/_sandbox/webhook_deliveries", timeout=5).json() == []
    moco.stop()
    assert not any(t.is_alive() for t in workers)


def test_command_line_webhook_options(tmp_path: Any) -> None:
    secret = "00112233445566778899aabbccddeeff"
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox", "moco", "--webhook-secret", "nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "--webhook-secret" in bad.stderr
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "moco",
        "--port",
        "0",
        "--webhook-secret",
        secret,
        "--webhook-jitter",
        "0",
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group(0)
        with Receiver() as receiver:
            hook = {"target": "Contact", "event": "create", "hook": receiver.url}
            requests.post(f"{url}/api/v1/account/web_hooks", json=hook, headers=AUTH, timeout=5)
            requests.post(
                f"{url}/api/v1/contacts/people",
                json={"lastname": "Cli", "gender": "U"},
                headers=AUTH,
                timeout=5,
            )
            (received,) = receiver.wait_for(1)
        assert signed(received, secret)
        assert json.loads(received.body)["lastname"] == "Cli"
    finally:
        process.kill()
        process.wait(timeout=5)
