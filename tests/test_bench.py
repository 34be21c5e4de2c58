"""The benchmark scripts run end to end in their quick modes, so `make bench` cannot rot unnoticed.

No figure is compared with a bar here (timings are for bench/, never for tests): these check that each
script measures what it says it does: every mode served without errors, each request exported the spans
it should, the PostgreSQL CPU of the telemetry's connections was found, and the rollups answer as
PERCENTILE_CONT does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
PERCENT_WITHIN = 2.0  # the rollups' percentile precision promised by issue #2 (~2%)


def run_bench(script: str, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCH_DIR / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, f"{script} exited with {completed.returncode}:\n{completed.stderr[-3000:]}"
    return completed.stdout


def markdown_tables(output: str) -> dict[str, list[dict[str, str]]]:
    """The tables a script printed, by the `### ` heading above each, as rows of {header: cell}."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading = ""
    headers: list[str] = []
    for line in output.splitlines():
        if line.startswith("### "):
            heading, headers = line[4:].strip(), []
        elif line.startswith("|") and not line.startswith("|-"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if not headers:
                headers = cells
                tables[heading] = []
            else:
                tables[heading].append(dict(zip(headers, cells, strict=True)))
    return tables


def by_mode(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["mode"].split(" ")[0]: row for row in rows}  # "(a)" ... "(f)", "(d')"


def test_overhead_serves_every_mode_without_errors_and_finds_the_telemetry_connections() -> None:
    if shutil.which("wrk") is None:
        pytest.fail("the wrk load generator is required: apt-get install -y wrk (.ci/run does it)")
    every_mode = "none,otel,pgotel-discard,pgotel,insert,logfire,pgotel-convert"  # the default, and (d')
    output = run_bench("overhead.py", "--quick", "--modes", every_mode)
    # The apps on a CPU of their own, wrk and PostgreSQL on the others, whenever the machine has two.
    pinned = len(os.sched_getaffinity(0)) >= 2
    assert ("wrk and PostgreSQL on CPU" if pinned else "sharing CPUs") in output.splitlines()[0]
    tables = markdown_tables(output)
    for endpoint in ("/trivial", "/db"):
        modes = by_mode(tables[f"`GET {endpoint}`"])
        assert sorted(modes) == ["(a)", "(b)", "(c)", "(d')", "(d)", "(e)", "(f)"]
        assert {mode: row["errors"] for mode, row in modes.items()} == dict.fromkeys(modes, "0")
        for mode in ("(d)", "(e)"):  # pgotel's writer, and the INSERT middleware's own pool
            assert float(modes[mode]["of which telemetry connections"]) > 0, (endpoint, mode)
        for mode in ("(a)", "(b)", "(c)", "(d')", "(f)"):
            assert modes[mode]["of which telemetry connections"] == "", (endpoint, mode)
    ratios = {(row["endpoint"], row["ratio"]) for row in tables["Acceptance ratios (medians of the per-round ratios)"]}
    for endpoint in ("/trivial", "/db"):
        for ratio in ("(d) / (c)", "(d) / (b)", "(d) / (f)", "(d) / (e)", "PG CPU/req (e) / (d)"):
            assert (endpoint, ratio) in ratios
        for ratio in ("(d') / (c)", "(d) / (d')"):  # the diagnostic split: converting, then writing
            assert (endpoint, ratio) in ratios
        assert (endpoint, "PG CPU/req of the telemetry connections (e) / (d)") in ratios


def test_request_cost_exports_the_spans_each_mode_records() -> None:
    rows = by_mode(
        markdown_tables(run_bench("request_cost.py", "--quick"))["CPU per request, `GET /trivial` in-process"]
    )
    spans = {mode: float(row["spans exported/req"]) for mode, row in rows.items()}
    # stock OTel: server span + ASGI receive/send spans; pgotel and Logfire: one server span; (a), (e): none.
    assert spans == {"(a)": 0.0, "(b)": 3.0, "(c)": 1.0, "(d)": 1.0, "(e)": 0.0, "(f)": 1.0}
    assert float(rows["(d)"]["PG server CPU us/req"]) > 0
    assert float(rows["(d)"]["of which other threads"]) > 0  # the export work is counted


def test_ingest_stores_every_span_on_both_paths() -> None:
    # The script itself exits non-zero when a path stored another count than it was given.
    tables = markdown_tables(run_bench("ingest.py", "--quick"))
    (table,) = [rows for heading, rows in tables.items() if heading.startswith("Span ingest")]
    rows = {row["path"]: row for row in table}
    assert sorted(rows) == ["exporter", "raw COPY"]
    assert all(float(row["spans/s (median)"].replace(",", "")) > 0 for row in rows.values())


def test_queries_rollups_answer_as_percentile_cont() -> None:
    output = run_bench("queries.py", "--volumes", "2000", "20000", "--runs", "1")
    accuracy = re.findall(r"worst P50/P95/P99 difference ([\d.]+)%, count/error mismatches (\d+)", output)
    assert len(accuracy) == 2, output
    for worst_percent, mismatches in accuracy:
        assert float(worst_percent) <= PERCENT_WITHIN
        assert int(mismatches) == 0
