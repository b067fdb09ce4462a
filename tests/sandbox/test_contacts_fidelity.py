"""The Contacts sandbox answers every field the official OpenAPI files document, typed as they say.

Expectations are read from the response schemas of ``sandbox/spec/highlevel-contacts-openapi.json``
and ``highlevel-oauth-openapi.json`` (the 2xx schema of each operation: its status code, its outer
properties, and every nested field's JSON type and nullability). Where the files are silent or
narrower than what the API is documented to answer, shared/reference/contacts-api.md fills in,
cited at each addition. Fields the sandbox cannot carry are listed with the reason.

Presence: an answer's outer properties are always required; inside, after a write that set every
writable field, every documented field is required too (minus the listed ones). Everywhere, a field
the tables do not know, a wrong JSON type or a null where the schema allows none is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.sandbox.fields import Field, Presence, component, from_schema, load_spec, problems

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.server import RunningSandbox

LOCATION = "sandbox-location"
HEADERS = {"Authorization": "Bearer sandbox-token", "Version": "2021-07-28"}
CONTACTS_SPEC = load_spec("contacts")
OAUTH_SPEC = load_spec("oauth")

# Fields of the Contact schemas that the CRM keeps by itself and the sandbox does not emulate:
# file attachments, SSN and keyword imports, activity and session tracking, chat visitors, ad
# attribution; businessId is set by POST /contacts/bulk/business, a route the sandbox lacks.
NOT_EMULATED = frozenset(
    {
        "attachments",
        "ssn",
        "keyword",
        "lastActivity",
        "lastSessionActivityAt",
        "attributionSource",
        "lastAttributionSource",
        "attributions",
        "visitorId",
        "businessId",
    }
)
FULL = Presence(everything=True, skip=NOT_EMULATED)


def contact_extras() -> dict[str, Field]:
    """What a contact answer carries beyond the v2 schemas, each documented elsewhere."""
    inbound = component(CONTACTS_SPEC, "InboundDndSettingsSchema")
    inbound.required = False
    return {
        # contacts-api.md §5.6: "returned on reads per [ISSUE] #262 and [SPEC-init]; not in the
        # v2 GET schema"
        "additionalEmails": Field(("array",), required=False),
        "additionalPhones": Field(("array",), required=False),
        "followers": Field(("array",), required=False, items=Field(("string",))),
        # §5.7: CreateContactDto and UpsertContactDto take these and the sandbox answers them back
        # like every stored field (UNCONFIRMED: the v2 answer schemas list neither)
        "gender": Field(("string",), required=False),
        "inboundDndSettings": inbound,
    }


def contact(*schemas: str) -> Field:
    """A contact object: the union of the named Contact schemas plus :func:`contact_extras`."""
    fields: dict[str, Field] = {}
    for name in schemas:
        fields |= component(CONTACTS_SPEC, name).fields or {}
    fields |= contact_extras()
    # §5.6: customFields output is [{id: string, value: string|number|array|object}]; the schema's
    # `value: string` is narrower than what the API stores for numeric and multi-value fields
    custom = fields["customFields"].items
    assert custom is not None and custom.fields is not None
    custom.fields["value"] = Field(("string", "number", "array", "object"))
    return Field(("object",), fields=fields)


# The Contact object as each route answers it
GET_CONTACT = ("GetContectByIdSchema",)
# §5.6: "CreatedContact ... has the Contact fields plus deleted, bounceEmail, ..."
CREATED_CONTACT = ("GetContectByIdSchema", "CreateContactSchema")
# §5.3: list items are ContactsSearchSchema, but "real list items contain more fields ... so the
# emulator should return the full Contact object"
LISTED_CONTACT = ("GetContectByIdSchema", "ContactsSearchSchema")


def answer(spec: dict[str, Any], method: str, template: str) -> tuple[int, Field]:
    """The status and field table of an operation's success answer, from the OpenAPI file.
    Its outer properties are all required: they are the answer's envelope."""
    operation = spec["paths"][template][method.lower()]
    status, response = next((s, r) for s, r in operation["responses"].items() if s[0] == "2")
    table = from_schema(response["content"]["application/json"]["schema"], spec)
    for sub in (table.fields or {}).values():
        sub.required = True
    return int(status), table


def routed(method: str, template: str) -> tuple[int, Field]:
    """:func:`answer` of a route of the Contacts file."""
    return answer(CONTACTS_SPEC, method, template)


def contacts_answer(
    method: str, template: str, name: str, schemas: tuple[str, ...]
) -> tuple[int, Field]:
    """:func:`answer` of a Contacts route whose property ``name`` holds a contact or a list of
    them, described by :func:`contact` instead of the bare schema."""
    status, table = routed(method, template)
    assert table.fields is not None
    current = table.fields[name]
    if current.items is not None:
        current.items = contact(*schemas)
    else:
        table.fields[name] = contact(*schemas)
    return status, table


class Api:
    """Calls the sandbox and holds each answer against its table; collects what differs."""

    def __init__(self, sandbox: RunningSandbox, token: str = "sandbox-token") -> None:
        self.url = sandbox.url
        self.headers = {**HEADERS, "Authorization": f"Bearer {token}"}
        self.found: list[str] = []

    def call(
        self,
        method: str,
        path: str,
        expected: tuple[int, Field],
        presence: Presence | None = None,
        **kwargs: Any,
    ) -> Any:
        response = requests.request(
            method, self.url + path, headers=self.headers, timeout=10, **kwargs
        )
        status, table = expected
        assert response.status_code == status, (method, path, response.text)
        body = response.json()
        self.found += problems(table, body, f"{method} {path}", presence)
        return body


def full_contact_body(email: str, phone: str) -> dict[str, Any]:
    """A create body that sets every property CreateContactDto declares."""
    channels = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")
    body = {
        "locationId": LOCATION,
        "firstName": "Ada",
        "lastName": "Lovelace",
        "name": "Ada Lovelace",
        "email": email,
        "gender": "female",
        "phone": phone,
        "address1": "12 St James's Square",
        "city": "London",
        "state": "LDN",
        "postalCode": "SW1Y 4JH",
        "website": "https://ada.example.com",
        "timezone": "Europe/London",
        "dnd": False,
        "dndSettings": {c: {"status": "inactive", "message": "m", "code": "c"} for c in channels},
        "inboundDndSettings": {"all": {"status": "inactive", "message": "m"}},
        "tags": ["vip"],
        "customFields": [{"id": "cf1", "field_value": "x"}, {"key": "moco_id", "fieldValue": 42}],
        "source": "moco",
        "dateOfBirth": "1815-12-10",
        "country": "GB",
        "companyName": "Engines Ltd",
        "assignedTo": "user0000000000000001",
    }
    declared = component(CONTACTS_SPEC, "CreateContactDto").fields or {}
    assert set(body) == set(declared)  # stays "every property" if the file changes
    return body


def test_contact_answers_match_the_spec(contacts_sandbox: RunningSandbox) -> None:
    api = Api(contacts_sandbox)
    create = contacts_answer("POST", "/contacts/", "contact", CREATED_CONTACT)
    created = api.call(
        "POST",
        "/contacts/",
        create,
        FULL,
        json=full_contact_body("ada@example.com", "+18885550100"),
    )["contact"]
    cid = created["id"]
    bare = api.call(
        "POST", "/contacts/", create, json={"locationId": LOCATION, "email": "bare@example.com"}
    )["contact"]
    one = contacts_answer("GET", "/contacts/{contactId}", "contact", GET_CONTACT)
    api.call("GET", f"/contacts/{cid}", one, FULL)
    api.call("GET", f"/contacts/{bare['id']}", one)
    put = contacts_answer("PUT", "/contacts/{contactId}", "contact", GET_CONTACT)
    api.call("PUT", f"/contacts/{cid}", put, FULL, json={"city": "Marylebone", "tags": ["math"]})
    upsert = contacts_answer("POST", "/contacts/upsert", "contact", GET_CONTACT)
    api.call(
        "POST",
        "/contacts/upsert",
        upsert,
        FULL,
        json={"locationId": LOCATION, "email": "ada@example.com"},
    )
    api.call(
        "POST",
        "/contacts/upsert",
        upsert,
        json={"locationId": LOCATION, "email": "new@example.com"},
    )
    seeded = requests.post(
        f"{api.url}/_sandbox/seed",
        json={"contacts": [{"email": "biz@example.com", "businessId": "biz1"}]},
        timeout=10,
    )
    assert seeded.status_code == 200

    # the deprecated list: the file's {contacts, count}, plus §5.3's "Observed / real" `meta`
    # typed by the file's own (unreferenced) ContactsMetaSchema. At the end of the list its cursor
    # fields are null (UNCONFIRMED: §5.3 says to stop when a page "has no startAfterId"; prevPage
    # is nullable in the file itself)
    status, listed = contacts_answer("GET", "/contacts/", "contacts", LISTED_CONTACT)
    meta = component(CONTACTS_SPEC, "ContactsMetaSchema")
    for name, sub in (meta.fields or {}).items():
        sub.required = True
        sub.nullable = name in ("nextPageUrl", "startAfterId", "startAfter", "nextPage", "prevPage")
    assert listed.fields is not None
    listed.fields["meta"] = meta
    for limit in (2, 100):
        api.call(
            "GET", "/contacts/", (status, listed), params={"locationId": LOCATION, "limit": limit}
        )
    business = contacts_answer("GET", "/contacts/business/{businessId}", "contacts", LISTED_CONTACT)
    api.call("GET", "/contacts/business/biz1", business, params={"locationId": LOCATION})

    # POST /contacts/search has no answer schema in the v2 file; §5.4 gives [SPEC-init]'s
    # {contacts: Contact[], total: number}, each item also with `searchAfter` and `opportunities`;
    # reverse-and-realtime.md §1.1: "Response: {contacts: [...], total: <number>, traceId?}"
    item = contact(*GET_CONTACT)
    assert item.fields is not None
    item.fields["searchAfter"] = Field(("array",))
    item.fields["opportunities"] = Field(("array",), items=Field(("object",)))
    searched = Field(
        ("object",),
        fields={
            "contacts": Field(("array",), items=item),
            "total": Field(("number",)),
            "traceId": Field(("string",), required=False),
        },
    )
    for body in ({"pageLimit": 10}, {"pageLimit": 1, "query": "ada"}):
        api.call("POST", "/contacts/search", (200, searched), json={"locationId": LOCATION, **body})

    # GET /contacts/search/duplicate: "The 200 body is undocumented. Presumably it is
    # {contact: Contact | null}; UNCONFIRMED" (§6). That shape, both outcomes
    duplicate = contact(*GET_CONTACT)
    duplicate.nullable = True
    found = (200, Field(("object",), fields={"contact": duplicate}))
    for email in ("ada@example.com", "nobody@example.com"):
        params = {"locationId": LOCATION, "email": email}
        api.call("GET", "/contacts/search/duplicate", found, params=params)

    tags = {"json": {"tags": ["x"]}}
    api.call(
        "POST",
        f"/contacts/{cid}/tags",
        routed("POST", "/contacts/{contactId}/tags"),
        **tags,
    )
    api.call(
        "DELETE",
        f"/contacts/{cid}/tags",
        routed("DELETE", "/contacts/{contactId}/tags"),
        **tags,
    )
    gone = routed("DELETE", "/contacts/{contactId}")
    api.call("DELETE", f"/contacts/{bare['id']}", gone)
    assert not api.found, "\n".join(api.found)


def test_task_note_and_appointment_answers_match_the_spec(contacts_sandbox: RunningSandbox) -> None:
    api = Api(contacts_sandbox)
    cid = api.call(
        "POST",
        "/contacts/",
        contacts_answer("POST", "/contacts/", "contact", CREATED_CONTACT),
        json={"locationId": LOCATION, "email": "kids@example.com"},
    )["contact"]["id"]

    tasks = f"/contacts/{cid}/tasks"
    full_task = {
        "title": "Call",
        "body": "About the offer",
        "dueDate": "2020-10-25T11:00:00Z",
        "completed": False,
        "assignedTo": "user0000000000000001",
    }
    assert set(full_task) == set(component(CONTACTS_SPEC, "CreateTaskParams").fields or {})
    task = api.call(
        "POST",
        tasks,
        routed("POST", "/contacts/{contactId}/tasks"),
        FULL,
        json=full_task,
    )["task"]
    api.call(
        "POST",
        tasks,
        routed("POST", "/contacts/{contactId}/tasks"),
        json={"title": "Bare", "dueDate": "2021-01-01T00:00:00Z", "completed": True},
    )
    one = "/contacts/{contactId}/tasks/{taskId}"
    api.call("GET", tasks, routed("GET", "/contacts/{contactId}/tasks"))
    api.call("GET", f"{tasks}/{task['id']}", routed("GET", one), FULL)
    api.call(
        "PUT",
        f"{tasks}/{task['id']}",
        routed("PUT", one),
        FULL,
        json={"title": "Call back"},
    )
    done = routed("PUT", f"{one}/completed")
    api.call("PUT", f"{tasks}/{task['id']}/completed", done, FULL, json={"completed": True})
    api.call("DELETE", f"{tasks}/{task['id']}", routed("DELETE", one))

    notes = f"/contacts/{cid}/notes"
    full_note = {
        "body": "First",
        "userId": "user0000000000000001",
        "title": "Call",
        "color": "#FFAA00",
        "pinned": True,
    }
    assert set(full_note) == set(component(CONTACTS_SPEC, "NotesDTO").fields or {})
    note = api.call(
        "POST",
        notes,
        routed("POST", "/contacts/{contactId}/notes"),
        FULL,
        json=full_note,
    )["note"]
    api.call(
        "POST",
        notes,
        routed("POST", "/contacts/{contactId}/notes"),
        json={"body": "Bare"},
    )
    one = "/contacts/{contactId}/notes/{id}"
    api.call("GET", notes, routed("GET", "/contacts/{contactId}/notes"))
    api.call("GET", f"{notes}/{note['id']}", routed("GET", one), FULL)
    api.call(
        "PUT",
        f"{notes}/{note['id']}",
        routed("PUT", one),
        FULL,
        json={"body": "Edited"},
    )
    api.call("DELETE", f"{notes}/{note['id']}", routed("DELETE", one))

    # appointments are seeded (the Contacts API has no route to create them): every field of
    # GetEventSchema but those the sandbox fills in itself must then be answered
    event = {
        "calendarId": "cal1",
        "status": "booked",
        "title": "Kick-off",
        "assignedUserId": "user0000000000000001",
        "notes": "Agenda",
        "startTime": "2021-07-16 11:00:00",
        "endTime": "2021-07-16 11:30:00",
        "address": "Zoom",
        "groupId": "group1",
        # reverse-and-realtime.md §3.2: the appointment status enum; "booked" is `status`'s value
        "appointmentStatus": "confirmed",
        "users": ["user0000000000000001"],
        "assignedResources": ["room1"],
    }
    filled = {"id", "contactId", "locationId", "dateAdded", "dateUpdated"}
    assert set(event) | filled == set(component(CONTACTS_SPEC, "GetEventSchema").fields or {})
    seeded = requests.post(
        f"{api.url}/_sandbox/seed",
        json={"appointments": [{"contactId": cid, **event}]},
        timeout=10,
    )
    assert seeded.status_code == 200, seeded.text
    events = routed("GET", "/contacts/{contactId}/appointments")
    api.call("GET", f"/contacts/{cid}/appointments", events, FULL)
    assert not api.found, "\n".join(api.found)


def test_oauth_answers_match_the_spec(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(agency_token="agency-secret")
    authorized = requests.get(
        f"{sandbox.url}/v2/oauth/chooselocation",
        allow_redirects=False,
        timeout=10,
        params={
            "response_type": "code",
            "client_id": "sandbox-client-id",
            "redirect_uri": "http://127.0.0.1:9/callback",
        },
    )
    code = parse_qs(urlsplit(authorized.headers["Location"]).query)["code"][0]
    api = Api(sandbox, token="agency-secret")
    # contacts-api.md §2.1 and §9 (7): a Location token answer carries these; the file's other
    # properties are for Company tokens (approvedLocations, installToFutureLocations,
    # approveAllLocations), bulk installs (isBulkInstallation) and paid apps (planId)
    status, token = answer(OAUTH_SPEC, "POST", "/oauth/token")
    sent = ("access_token", "token_type", "expires_in", "refresh_token", "scope", "userType")
    for name, sub in (token.fields or {}).items():
        sub.required = name in (*sent, "locationId", "companyId", "userId")
    client = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
    first = api.call(
        "POST",
        "/oauth/token",
        (status, token),
        data={**client, "grant_type": "authorization_code", "code": code},
    )
    api.call(
        "POST",
        "/oauth/token",
        (status, token),
        data={**client, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    # §2.2: "access_token, token_type, expires_in (86399), scope, locationId, planId, userId
    # (required), appId, versionId"; planId names a paid app's plan. The v2 file lists no
    # refresh_token, v3's copy does ("whether v2 returns a refresh token is UNCONFIRMED"): the
    # sandbox sends it, so it is typed as v3 types it
    status, minted = answer(OAUTH_SPEC, "POST", "/oauth/locationToken")
    assert minted.fields is not None
    minted.fields["planId"].required = False
    minted.fields["refresh_token"] = Field(("string",), required=False)
    api.call(
        "POST",
        "/oauth/locationToken",
        (status, minted),
        Presence(everything=True, skip=frozenset({"planId"})),
        data={"companyId": "sandbox-company", "locationId": LOCATION},
    )
    assert not api.found, "\n".join(api.found)


# contacts-api.md §7, "Error response formats"
ERRORS = {
    400: {
        "statusCode": Field(("number",)),
        "message": Field(("string",)),
        "meta": Field(("object",), required=False),
    },
    401: {
        "statusCode": Field(("number",)),
        "message": Field(("string",)),
        "error": Field(("string",)),
    },
    403: {
        "statusCode": Field(("number",)),
        "message": Field(("string",)),
        "error": Field(("string",), required=False),
    },
    404: {
        "statusCode": Field(("number",)),
        "message": Field(("string",)),
        "error": Field(("string",), required=False),
    },
    422: {
        "statusCode": Field(("number",)),
        "message": Field(("array",), items=Field(("string",))),
        "error": Field(("string",)),
    },
}


def test_error_answers_keep_the_documented_envelopes(
    contacts_sandbox_factory: Callable[..., RunningSandbox],
) -> None:
    sandbox = contacts_sandbox_factory(extra_locations=("other-location",))
    api = Api(sandbox)
    cid = api.call(
        "POST",
        "/contacts/",
        contacts_answer("POST", "/contacts/", "contact", CREATED_CONTACT),
        json={"locationId": LOCATION, "email": "err@example.com"},
    )["contact"]["id"]
    cases = [
        (api, "GET", f"/contacts/{'z' * 20}", {}, 400),
        (
            api,
            "POST",
            "/contacts/",
            {"json": {"locationId": LOCATION, "email": "err@example.com"}},
            400,
        ),
        (Api(sandbox, token="nope"), "GET", f"/contacts/{cid}", {}, 401),
        (Api(sandbox, token="sandbox-token-other-location"), "GET", f"/contacts/{cid}", {}, 403),
        (api, "GET", f"/contacts/{cid}/tasks/{'z' * 20}", {}, 404),
        (api, "POST", "/contacts/", {"json": {"locationId": LOCATION, "x": 1}}, 422),
    ]
    for caller, method, path, kwargs, status in cases:
        caller.call(method, path, (status, Field(("object",), fields=ERRORS[status])), **kwargs)
        api.found += caller.found if caller is not api else []
    assert not api.found, "\n".join(api.found)


def test_the_tables_reject_what_the_sandbox_used_to_answer() -> None:
    """The checks can fail: the list answer without `count` and a created contact without the
    CreatedContact fields are refused, and so is a mistyped or undocumented field."""
    _, listed = contacts_answer("GET", "/contacts/", "contacts", LISTED_CONTACT)
    assert problems(listed, {"contacts": []}, "list") == ["list.count: missing"]
    _, create = contacts_answer("POST", "/contacts/", "contact", CREATED_CONTACT)
    old = {"contact": {"id": "a" * 20, "locationId": LOCATION, "deleted": False, "tags": []}}
    found = problems(create, old, "create", FULL)
    assert {"create.contact.bounceEmail: missing", "create.contact.offers: missing"} <= set(found)
    assert problems(create, {"contact": {"dnd": "no"}}, "c") == [
        "c.contact.dnd: string, documented boolean"
    ]
    assert problems(create, {"contact": {"firstname": "x"}}, "c") == [
        "c.contact.firstname: not documented"
    ]
