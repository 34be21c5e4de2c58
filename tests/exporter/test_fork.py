"""A fork after the exporters exist (`gunicorn --preload`, multiprocessing): the child gets a writer of its own,
and the parent's keeps working whatever the child does with its copies of the parent's connections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgotel import db
from tests.conftest import stored_rows

# Runs in a process of its own: the parent exports and stores spans (its writer connected), forks, and the child
# exports spans of its own, reports, and exits normally; the parent then exports and flushes again.
_SCRIPT = """
import asyncio, json, os, sys, threading, time
import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pgotel.config import parse_settings
from pgotel.exporter import PostgresSpanExporter

dsn, child_finalizes_inherited = sys.argv[1], sys.argv[2] == "yes"
exporter = PostgresSpanExporter(settings=parse_settings({"database": {"dsn": dsn}}, source="test"))
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("fork-test")

def spans(name, count):
    for _ in range(count):
        with tracer.start_as_current_span(name):
            pass
    return exporter.force_flush(20_000)

async def writer_sessions():
    conn = await asyncpg.connect(dsn)
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE application_name = 'pgotel'")
    await conn.close()
    return {row["pid"] for row in pids}

def writer_running():
    return any(thread.name == "pgotel-writer" for thread in threading.enumerate())

report = {"parent_before": spans("parent-before", 5)}
parent_sessions = asyncio.run(writer_sessions())
pid = os.fork()
if pid == 0:
    child = {"writer_before_rows": writer_running()}
    child.update(flushed=spans("child", 7), received=exporter.writer.accounting.snapshot()["received"])
    if child_finalizes_inherited:  # what the interpreter's exit may do to the parent's loop and pool copied here
        from pgotel.exporter import _writer
        for _loop, store in _writer._INHERITED:
            store.terminate()
    print(json.dumps({"child": child}), flush=True)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
report["child_exit"] = os.waitstatus_to_exitcode(status)
time.sleep(0.5)  # a session the child ended would be gone by now
report["parent_sessions_kept"] = parent_sessions <= asyncio.run(writer_sessions())
report["parent_after"] = spans("parent-after", 3)
report["parent_received"] = exporter.writer.accounting.snapshot()["received"]
provider.shutdown()
print(json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("child_finalizes_inherited", [False, True], ids=["child-exits", "child-finalizes-copies"])
def test_parent_and_forked_child_each_store_their_own_spans(
    dsn: str, tmp_path: Path, child_finalizes_inherited: bool
) -> None:
    script = tmp_path / "fork_app.py"
    script.write_text(_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), dsn, "yes" if child_finalizes_inherited else "no"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    child_line, parent_line = result.stdout.strip().splitlines()
    child, parent = json.loads(child_line)["child"], json.loads(parent_line)

    # Its own writer, started by its first rows, counting only its own spans.
    assert child == {"writer_before_rows": False, "flushed": True, "received": {"spans": 7}}
    assert parent == {
        "parent_before": True,
        "child_exit": 0,
        "parent_sessions_kept": True,
        "parent_after": True,
        "parent_received": {"spans": 8},
    }
    assert _stored_by_name(dsn) == [("child", 7), ("parent-after", 3), ("parent-before", 5)]


def _stored_by_name(dsn: str) -> list[tuple[str, int]]:
    rows = stored_rows(dsn, "SELECT name, count(*) FROM pgotel.spans GROUP BY name ORDER BY name")
    return [(row["name"], row["count"]) for row in rows]


# A child whose first rows come with its shutdown: its writer starts then, and the shutdown must wait for it to connect.
_EXPORT_AT_EXIT_SCRIPT = """
import json, os, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pgotel.config import parse_settings
from pgotel.exporter import PostgresSpanExporter

exporter = PostgresSpanExporter(settings=parse_settings({"database": {"dsn": sys.argv[1]}}, source="test"))
assert exporter.force_flush(20_000)
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
for _ in range(5):
    with provider.get_tracer("fork-test").start_as_current_span("exported-at-exit"):
        pass
if os.fork() == 0:
    exporter.export(memory.get_finished_spans())  # one batch, as a batch processor's shutdown hands it over
    accounting = exporter.writer.accounting
    exporter.shutdown()
    print(json.dumps(accounting.snapshot()["dropped"]), flush=True)
    os._exit(0)
os.wait()
exporter.shutdown()
"""


def test_a_child_whose_first_rows_come_with_its_shutdown_stores_them(dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "export_at_exit_app.py"
    script.write_text(_EXPORT_AT_EXIT_SCRIPT)
    result = subprocess.run([sys.executable, str(script), dsn], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip()) == {}  # nothing dropped
    assert _stored_by_name(dsn) == [("exported-at-exit", 5)]


# `multiprocessing` children end through os._exit, which skips the atexit shutdown that flushes the pipeline.
# setup() runs in the parent before the children are forked, or in each child (a Pool's initializer).
_MULTIPROCESSING_SCRIPT = """
import json, multiprocessing, sys
from opentelemetry import trace
import pgotel

config, where = sys.argv[1], sys.argv[2]
if where == "parent":
    handle = pgotel.setup(config=config)
    handle.force_flush()  # connected before the forks (a fork during its SSL setup is another test's subject)

def set_up_in_child():
    pgotel.setup(config=config)

def emit(count):
    tracer = trace.get_tracer("multiprocessing-test")
    for _ in range(count):
        with tracer.start_as_current_span("child-of-multiprocessing"):
            pass
    return count

if __name__ == "__main__":
    context = multiprocessing.get_context("fork")
    if where == "parent":
        children = [context.Process(target=emit, args=(20,)) for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join()
        print(json.dumps(sum(20 for child in children if child.exitcode == 0)))
        handle.shutdown()
    else:
        pool = context.Pool(2, initializer=set_up_in_child)
        print(json.dumps(sum(pool.map(emit, [10, 10, 10, 10]))))
        pool.close()
        pool.join()
"""


@pytest.mark.parametrize("where", ["parent", "child"], ids=["setup-in-parent", "setup-in-pool-initializer"])
def test_multiprocessing_children_store_what_they_emit_before_returning(
    where: str, dsn: str, tmp_path: Path, repo_root: Path
) -> None:
    script = tmp_path / "multiprocessing_app.py"
    script.write_text(_MULTIPROCESSING_SCRIPT)
    (tmp_path / "otel-config.yaml").write_text((repo_root / "otel-config.yaml").read_text())
    env = {**os.environ, "PGOTEL_DSN": dsn, "PGOTEL_DASHBOARD_TOKEN": "fork-test-token"}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "otel-config.yaml"), where],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == 40
    assert _stored_by_name(dsn) == [("child-of-multiprocessing", 40)]


# A child forked while the writer thread was inside OpenSSL (asyncpg creates an SSLContext for every connection it
# opens with `sslmode=prefer`) hung in its own first SSL use. The embedded server's DSN disables TLS (loopback).
_SSL_SCRIPT = """
import os, ssl, sys, threading, time
from pgotel.config import parse_settings
from pgotel.exporter import PostgresSpanExporter

exporter = PostgresSpanExporter(settings=parse_settings({"database": {"dsn": sys.argv[1]}}, source="test"))
children = []
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline and not exporter.writer.connected:
    pid = os.fork()
    if pid == 0:
        made = []
        worker = threading.Thread(target=lambda: made.append(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)), daemon=True)
        worker.start()
        worker.join(5)
        os._exit(0 if made else 1)
    children.append(pid)
    time.sleep(0.001)
print(sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children))
exporter.shutdown()
"""


def test_children_forked_while_the_writer_connects_to_the_embedded_server_can_use_ssl(tmp_path: Path) -> None:
    script = tmp_path / "ssl_fork_app.py"
    script.write_text(_SSL_SCRIPT)
    server = db.start_embedded(tmp_path / "embedded")
    try:
        for _ in range(3):  # each run forks a few dozen children across the writer's first connection
            result = subprocess.run(
                [sys.executable, str(script), server.dsn], capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr[-3000:]
            assert result.stdout.strip() == "0"  # children whose SSLContext() hung
    finally:
        db.stop_embedded(tmp_path / "embedded")
