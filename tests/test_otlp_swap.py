"""Replacing `pgotel: {}` by `otlp_http: {endpoint: ...}` sends OTLP/HTTP to that endpoint instead."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import pgotel


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: dict[str, list[bytes]] = {}


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _otlp_config(repo_root: Path, tmp_path: Path, base: str) -> Path:
    text = (repo_root / "otel-config.yaml").read_text()
    exporter_line = re.compile(r"^(\s+)pgotel: \{\}$", re.MULTILINE)
    for signal in ("traces", "metrics", "logs"):
        text = exporter_line.sub(rf"\1otlp_http: {{endpoint: {base}/v1/{signal}}}", text, count=1)
    assert not exporter_line.search(text)
    path = tmp_path / "otel-config.yaml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def _otlp_pipeline(receiver: _Receiver, repo_root: Path, tmp_path: Path) -> Iterator[pgotel.PgOtel]:
    """`pgotel.setup()` with otel-config.yaml's exporters swapped for `otlp_http` to `receiver`; flushed and
    shut down on exit."""
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    handle = pgotel.setup(config=_otlp_config(repo_root, tmp_path, base))
    try:
        yield handle
        assert handle.force_flush(10_000)
    finally:
        handle.shutdown()


def test_otlp_http_exporter_receives_all_three_signals(receiver: _Receiver, repo_root: Path, tmp_path: Path) -> None:
    with _otlp_pipeline(receiver, repo_root, tmp_path) as handle:
        with handle.tracer_provider.get_tracer("swap").start_as_current_span("sent-over-otlp"):
            logging.getLogger("swap.app").warning("a log line over otlp")
        handle.meter_provider.get_meter("swap").create_counter("swap.count").add(3)

    traces = ExportTraceServiceRequest.FromString(receiver.bodies["/v1/traces"][0])
    names = [span.name for rs in traces.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert "sent-over-otlp" in names
    logs = ExportLogsServiceRequest()
    for body in receiver.bodies["/v1/logs"]:
        logs.MergeFromString(body)
    bodies = [r.body.string_value for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert "a log line over otlp" in bodies
    metrics = ExportMetricsServiceRequest()
    for body in receiver.bodies["/v1/metrics"]:
        metrics.MergeFromString(body)
    metric_names = {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "swap.count" in metric_names


def test_secrets_are_redacted_before_the_otlp_exporter_too(
    receiver: _Receiver, repo_root: Path, tmp_path: Path
) -> None:
    with _otlp_pipeline(receiver, repo_root, tmp_path) as handle:
        tracer = handle.tracer_provider.get_tracer("swap")
        attributes = {"api_key": "PLANTED-1", "url.full": "https://pay.example/v1?token=PLANTED-2"}
        with tracer.start_as_current_span("checkout", attributes=attributes) as span:
            span.add_event("retry", {"password": "PLANTED-3"})
            logging.getLogger("swap.app").warning(
                "calling https://pay.example/v1?secret=PLANTED-4", extra={"session_token": "PLANTED-5"}
            )

    sent = b"".join(body for bodies in receiver.bodies.values() for body in bodies)
    assert b"checkout" in sent
    assert b"calling https://pay.example/v1?secret=" in sent
    assert [
        planted for planted in (b"PLANTED-1", b"PLANTED-2", b"PLANTED-3", b"PLANTED-4", b"PLANTED-5") if planted in sent
    ] == []


def test_values_otlp_cannot_encode_are_replaced_and_counted_not_the_batch_lost(
    receiver: _Receiver, repo_root: Path, tmp_path: Path
) -> None:
    with _otlp_pipeline(receiver, repo_root, tmp_path) as handle:
        tracer = handle.tracer_provider.get_tracer("swap")
        with tracer.start_as_current_span("before"):
            pass
        # A lone surrogate (text decoded with surrogateescape) and an integer beyond 64 bits.
        with tracer.start_as_current_span("report-\udcff", attributes={"bytes.total": 2**70}) as span:
            span.add_event("read \udcfe", {"file": "data-\udcfd.csv"})
        with tracer.start_as_current_span("after", attributes={"huge": 10**5000}):  # beyond Python's str()
            pass
        # Beyond the 128-attribute limit: the copy made to replace the bad value keeps the dropped count.
        with tracer.start_as_current_span("wide", attributes={**{f"k{n}": n for n in range(130)}, "bad": "\udcff"}):
            pass
        logging.getLogger("swap.app").warning("opened %s", "photo-\udce9.jpg")
        handle.logger_provider.get_logger("swap.api").emit(body={"unsupported": {1, 2}, "large": -(2**64)})
        logging.getLogger("swap.app").warning("a clean line")

    traces = ExportTraceServiceRequest()
    for body in receiver.bodies["/v1/traces"]:
        traces.MergeFromString(body)
    spans = {span.name: span for rs in traces.resource_spans for ss in rs.scope_spans for span in ss.spans}
    assert set(spans) == {"before", "report-?", "after", "wide"}
    assert spans["wide"].dropped_attributes_count == 3
    assert {kv.key: kv.value for kv in spans["wide"].attributes}["bad"].string_value == "?"
    report = spans["report-?"]
    assert [(kv.key, kv.value.string_value) for kv in report.attributes] == [("bytes.total", str(2**70))]
    assert [(event.name, event.attributes[0].value.string_value) for event in report.events] == [
        ("read ?", "data-?.csv")
    ]
    assert [(kv.key, kv.value.string_value) for kv in spans["after"].attributes] == [("huge", hex(10**5000))]

    logs = ExportLogsServiceRequest()
    for body in receiver.bodies["/v1/logs"]:
        logs.MergeFromString(body)
    records = [record for rl in logs.resource_logs for sl in rl.scope_logs for record in sl.log_records]
    assert [record.body.string_value for record in records if record.body.HasField("string_value")] == [
        "opened photo-?.jpg",
        "a clean line",
    ]
    (structured,) = [record.body.kvlist_value for record in records if record.body.HasField("kvlist_value")]
    assert {kv.key: kv.value.string_value for kv in structured.values} == {
        "unsupported": "{1, 2}",
        "large": str(-(2**64)),
    }

    metrics = ExportMetricsServiceRequest()
    for body in receiver.bodies["/v1/metrics"]:
        metrics.MergeFromString(body)
    counted: dict[tuple[str, str], int] = {}
    for rm in metrics.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "pgotel.otlp.sanitized":
                    for point in metric.sum.data_points:
                        labels = {kv.key: kv.value.string_value for kv in point.attributes}
                        key = (labels["signal"], labels["reason"])
                        counted[key] = max(counted.get(key, 0), point.as_int)
    assert counted == {
        ("spans", "invalid_unicode"): 4,
        ("spans", "integer_out_of_range"): 2,
        ("logs", "invalid_unicode"): 1,
        ("logs", "unsupported_type"): 1,
        ("logs", "integer_out_of_range"): 1,
    }
