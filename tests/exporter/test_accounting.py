"""Drops are counted and logged: one line per signal and reason every 30 s at most, with the cause if any."""

from __future__ import annotations

import pytest

from pgotel.exporter import Accounting


def test_every_drop_is_counted_and_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    accounting = Accounting()

    accounting.dropped("spans", "timestamp_outside_retention", 3)
    accounting.dropped("spans", "timestamp_outside_retention", 4)  # within 30 s: counted, not logged again
    accounting.dropped("logs", "rejected_by_database", error=ValueError("invalid byte sequence"))
    accounting.dropped("logs", "queue_full", 0)  # nothing dropped: nothing counted or logged
    accounting.dropped("spans", "shutdown_deadline", 5)
    accounting.dropped("logs", "shutdown_deadline", 2)  # the same reason for another signal: logged too

    assert accounting.snapshot()["dropped"] == {
        "spans/timestamp_outside_retention": 7,
        "logs/rejected_by_database": 1,
        "spans/shutdown_deadline": 5,
        "logs/shutdown_deadline": 2,
    }
    assert [record.getMessage() for record in caplog.records] == [
        "pgotel: 3 spans dropped (timestamp_outside_retention, 3 so far): their timestamps are outside the "
        "retention window: is this host's clock right?",
        "pgotel: 1 logs dropped (rejected_by_database, 1 so far): PostgreSQL rejected them: "
        "ValueError('invalid byte sequence')",
        "pgotel: 5 spans dropped (shutdown_deadline, 5 so far): the process shut down before PostgreSQL took them",
        "pgotel: 2 logs dropped (shutdown_deadline, 2 so far): the process shut down before PostgreSQL took them",
    ]
    assert {record.name for record in caplog.records} == {"pgotel.exporter"}
