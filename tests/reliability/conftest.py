"""Fixtures of the reliability suite: sandboxes per test, a clean-run baseline per data set, the
evidence every test feeds (for the final secrets scan) and the rows of docs/reliability.md."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from sandbox.contacts import ContactsSandbox
from sandbox.moco import MocoSandbox
from sandbox.server import RunningSandbox
from tests.reliability.harness import (
    AGENCY_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    COMPANY_ID,
    LOCATION,
    MOCO_KEY,
    PIT,
    Evidence,
    Row,
    World,
    watch_oauth,
)
from tests.reliability.two_way import (
    MOCO_CONTACTS,
    MOCO_SEED,
    TwoWayBaseline,
    TwoWayWorld,
    change_crm,
    seed_two_way,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

RESULTS_ENV = "RELIABILITY_RESULTS"


def results_path(config: pytest.Config) -> Path:
    """Where this session's table rows go (``$RELIABILITY_RESULTS`` or the pytest cache)."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("reliability")) / "results.json"
    return Path(tempfile.gettempdir()) / "moco-contacts-sync-reliability.json"


@pytest.fixture(scope="session")
def evidence() -> Iterator[Evidence]:
    """Everything the reliability tests captured, and every secret they used or saw issued.

    Scanned when the session ends, too: with pytest-xdist each worker process has its own
    sandboxes (so its own issued tokens) and its own captures, and scans them; the final test
    (``test_zz_secrets_scan``) scans what its process gathered up to then, with its own run.
    """
    gathered = Evidence()
    yield gathered
    leaks = gathered.leaks()
    assert leaks == [], f"secrets found in captured output: {leaks[:20]}"


@pytest.fixture(scope="session")
def table(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    """The rows the tests measured; written as JSON when the session ends.

    Under pytest-xdist every worker adds its rows to the one file (under a file lock): rows of
    the same test run (xdist's run id) are kept, those of an earlier run replaced.
    """
    rows: list[Row] = []
    yield rows
    if rows:
        path = results_path(request.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
        with (path.parent / f"{path.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            kept: list[dict[str, Any]] = []
            if run and path.exists():
                try:
                    earlier = json.loads(path.read_text(encoding="utf-8"))
                except ValueError:
                    earlier = {}
                if isinstance(earlier, dict) and earlier.get("run") == run:
                    kept = earlier["rows"]
            document = {"run": run, "rows": kept + [asdict(r) for r in rows]}
            path.write_text(json.dumps(document, indent=1, ensure_ascii=False))


@pytest.fixture
def record(request: pytest.FixtureRequest, table: list[Row]) -> Callable[..., Row]:
    """Add one row to the table (marked slow when the test is)."""
    slow = request.node.get_closest_marker("slow") is not None

    def add(**fields: Any) -> Row:
        row = Row(slow=slow, **fields)
        table.append(row)
        return row

    return add


def _seed_moco(moco: RunningSandbox, n_contacts: int, seed: int) -> None:
    requests.post(
        f"{moco.url}/_sandbox/seed",
        timeout=60,
        json={"generate": {"contacts": n_contacts, "seed": seed}},
    ).raise_for_status()


def start_sandboxes(
    evidence: Evidence,
    *,
    latency: float = 0.01,
    allow_duplicates: bool = True,
    agency: bool = False,
    contacts: dict[str, Any] | None = None,
    moco: dict[str, Any] | None = None,
) -> tuple[RunningSandbox, RunningSandbox, list[dict[str, Any]]]:
    """A started MOCO sandbox and Contacts sandbox (both empty) and the list of OAuth token
    answers the Contacts sandbox gives (see :func:`watch_oauth`); the caller stops them."""
    moco_sandbox = RunningSandbox(
        MocoSandbox(
            **{"api_key": MOCO_KEY, "rate_limit": 100_000, "latency": latency, **(moco or {})}
        )
    ).start()
    contacts_sandbox = RunningSandbox(
        ContactsSandbox(
            **{
                "location_id": LOCATION,
                "token": PIT,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "company_id": COMPANY_ID,
                "agency_token": AGENCY_TOKEN if agency else None,
                "rate_limit": 100_000,
                "allow_duplicates": allow_duplicates,
                "latency": latency,
                **(contacts or {}),
            }
        )
    ).start()
    return moco_sandbox, contacts_sandbox, watch_oauth(contacts_sandbox, evidence)


@pytest.fixture
def world_factory(tmp_path: Path, evidence: Evidence) -> Iterator[Callable[..., World]]:
    """Make worlds: MOCO seeded with generated data, an empty Contacts location, a fresh ledger.

    Options: ``n_contacts``, ``seed`` (MOCO data), ``latency`` (both sandboxes, seconds),
    ``allow_duplicates`` (Contacts location; True means only the target's own rules prevent a
    duplicate), ``agency`` (accept AGENCY_TOKEN at /oauth/locationToken), ``contacts`` and
    ``moco`` (more sandbox constructor options), ``world_class`` (a :class:`World` subclass).
    """
    made: list[tuple[World, list[RunningSandbox]]] = []

    def make(
        *,
        n_contacts: int = 40,
        seed: int = 7,
        world_class: type[World] = World,
        **options: Any,
    ) -> World:
        moco_sandbox, contacts_sandbox, issued = start_sandboxes(evidence, **options)
        if n_contacts:
            _seed_moco(moco_sandbox, n_contacts, seed)
        folder = tmp_path / f"world{len(made) + 1}"
        folder.mkdir()
        world = world_class(moco_sandbox, contacts_sandbox, folder, evidence)
        world.issued = issued
        made.append((world, [moco_sandbox, contacts_sandbox]))
        return world

    yield make
    for world, sandboxes in made:
        try:
            world.collect()
        finally:
            for sandbox in sandboxes:
                sandbox.stop()


class Baseline:
    """What a clean run makes of a data set: the CRM, the rejects, the writes, the summary."""

    def __init__(
        self,
        crm: dict[str, Any],
        rejects: set[Any],
        writes: int,
        summary: dict[str, Any],
        moco: dict[str, Any],
    ) -> None:
        self.crm = crm
        self.rejects = rejects
        self.writes = writes
        self.summary = summary
        self.moco = moco


@pytest.fixture(scope="session")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, evidence: Evidence
) -> Callable[..., Baseline]:
    """``baseline(n_contacts, seed)``: one clean, fault-free run of that MOCO data set (cached)."""
    cache: dict[tuple[int, int], Baseline] = {}

    def get(n_contacts: int = 40, seed: int = 7) -> Baseline:
        key = (n_contacts, seed)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"baseline-{n_contacts}-{seed}")
            with (
                RunningSandbox(MocoSandbox(api_key=MOCO_KEY, rate_limit=100_000)) as moco,
                RunningSandbox(
                    ContactsSandbox(
                        location_id=LOCATION,
                        token=PIT,
                        client_id=CLIENT_ID,
                        client_secret=CLIENT_SECRET,
                        company_id=COMPANY_ID,
                        rate_limit=100_000,
                        allow_duplicates=True,
                    )
                ) as contacts,
            ):
                _seed_moco(moco, n_contacts, seed)
                world = World(moco, contacts, folder, evidence)
                run = world.run()
                assert run.ok, run.describe()
                assert run.summary is not None and run.summary["adds_up"], run.stderr[-2000:]
                cache[key] = Baseline(
                    world.crm(),
                    world.rejects(),
                    len(world.writes()),
                    run.summary,
                    world.moco_state(),
                )
                world.collect()
        return cache[key]

    return get


# --- two-way -------------------------------------------------------------------------------------
@pytest.fixture
def two_way_world(world_factory: Callable[..., World]) -> Callable[..., TwoWayWorld]:
    """Make two-way worlds: MOCO's generated people, the CRM's generated contacts with their
    tasks, notes and appointments, and a few people on both sides (:func:`seed_two_way`).
    Options as :func:`world_factory`'s."""

    def make(**options: Any) -> TwoWayWorld:
        world = world_factory(
            n_contacts=MOCO_CONTACTS, seed=MOCO_SEED, world_class=TwoWayWorld, **options
        )
        assert isinstance(world, TwoWayWorld)
        seed_two_way(world)
        return world

    return make


@pytest.fixture(scope="session")
def two_way_baseline(
    tmp_path_factory: pytest.TempPathFactory, evidence: Evidence
) -> Callable[[], TwoWayBaseline]:
    """``two_way_baseline()``: clean, fault-free cycles of the two-way data set (cached): the
    first cycle, a quiet one, :func:`change_crm` and its cycle, a quiet one."""
    cache: list[TwoWayBaseline] = []

    def get() -> TwoWayBaseline:
        if cache:
            return cache[0]
        moco, contacts, _issued = start_sandboxes(evidence)
        try:
            _seed_moco(moco, MOCO_CONTACTS, MOCO_SEED)
            folder = tmp_path_factory.mktemp("two-way-baseline")
            world = TwoWayWorld(moco, contacts, folder, evidence)
            seed_two_way(world)
            first = world.cycle()
            assert first.ok, first.describe()
            first_sides, first_rejects = world.sides(), world.rejects()
            world.assert_quiet()
            change_crm(world)
            changed = world.cycle()
            assert changed.ok, changed.describe()
            assert changed.moco_writes, "the CRM's changes reached MOCO"
            changed_sides, changed_rejects = world.sides(), world.rejects()
            world.assert_quiet()
            cache.append(
                TwoWayBaseline(
                    first_sides,
                    first_rejects,
                    first.moco_writes,
                    first.crm_writes,
                    changed_sides,
                    changed_rejects,
                    changed.moco_writes,
                )
            )
            world.collect()
        finally:
            moco.stop()
            contacts.stop()
        return cache[0]

    return get
