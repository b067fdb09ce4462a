"""The two-way merge of one record's fields (sync_ledger.merge), policy most_recent."""

from __future__ import annotations

from datetime import datetime, timezone

from sync_ledger.merge import ConflictPolicy, Merge, merge_fields

T1 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 12, 1, 11, 0, tzinfo=timezone.utc)


def _merge(source_time: datetime | None, target_time: datetime | None) -> Merge:
    return merge_fields(
        {"body": "Angebot geschickt (MOCO)"},
        {"body": "Angebot angenommen (CRM)"},
        {"body": "Angebot"},
        same=lambda _name, a, b: a == b,
        policy=ConflictPolicy.MOST_RECENT,
        source_is_moco=True,
        source_time=source_time,
        target_time=target_time,
    )


def test_both_sides_changed_the_newer_change_wins() -> None:
    newer_source, newer_target = _merge(T2, T1), _merge(T1, T2)
    assert (newer_source.writes, newer_source.conflicts) == (
        {"body": "Angebot geschickt (MOCO)"},
        {"body": "source"},
    )
    assert (newer_target.writes, newer_target.conflicts) == ({}, {"body": "target"})
    assert newer_target.baseline == {"body": "Angebot angenommen (CRM)"}


def test_without_a_time_on_one_side_the_change_read_wins_so_both_sides_agree() -> None:
    # CRM notes carry no update time: in either direction the run writes what it read.
    for merged in (_merge(T1, None), _merge(None, T1)):
        assert (merged.writes, merged.conflicts) == (
            {"body": "Angebot geschickt (MOCO)"},
            {"body": "source"},
        )
