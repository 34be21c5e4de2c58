"""The `http.server.request.duration` view: its exponential-histogram limits are used, a drop is honoured,
and anything pgotel cannot honour fails at startup naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgotel.config import HistogramShape, PgotelConfigError, load_config


def _with_view(tmp_path: Path, stream: str, instrument_name: str = "http.server.request.duration") -> Path:
    path = tmp_path / "otel-config.yaml"
    path.write_text(
        'file_format: "1.0"\n'
        "meter_provider:\n"
        "  readers: [{periodic: {exporter: {console: {}}}}]\n"
        "  views:\n"
        "    - selector: {instrument_name: db.client.operation.duration}\n"
        "      stream: {aggregation: {drop: {}}}\n"
        f"    - selector: {{instrument_name: '{instrument_name}'}}\n"
        f"      stream: {stream}\n"
    )
    return path


def test_the_shipped_config_keeps_percentiles_within_two_percent(repo_root: Path) -> None:
    # Scale 5 (32 buckets per doubling) over 1:1,000,000 needs ~640 buckets.
    assert load_config(repo_root / "otel-config.yaml").request_duration == HistogramShape(max_size=640, max_scale=20)


def test_the_views_limits_are_used(tmp_path: Path) -> None:
    path = _with_view(tmp_path, "{aggregation: {base2_exponential_bucket_histogram: {max_size: 320, max_scale: 8}}}")
    assert load_config(path).request_duration == HistogramShape(max_size=320, max_scale=8)


def test_a_wildcard_selector_matches_too(tmp_path: Path) -> None:
    path = _with_view(tmp_path, "{aggregation: {base2_exponential_bucket_histogram: {max_size: 90}}}", "http.server.*")
    assert load_config(path).request_duration == HistogramShape(max_size=90, max_scale=20)


def test_without_a_view_the_sdk_defaults_apply(tmp_path: Path) -> None:
    path = tmp_path / "otel-config.yaml"
    path.write_text('file_format: "1.0"\n')
    assert load_config(path).request_duration == HistogramShape(max_size=160, max_scale=20)


def test_a_drop_view_turns_the_metric_off(tmp_path: Path) -> None:
    assert load_config(_with_view(tmp_path, "{aggregation: {drop: {}}}")).request_duration is None


def test_an_explicit_bucket_histogram_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = _with_view(tmp_path, "{aggregation: {explicit_bucket_histogram: {boundaries: [0.1, 1]}}}")
    key = r"otel-config\.yaml: meter_provider\.views\[1\]\.stream\.aggregation: "
    with pytest.raises(PgotelConfigError, match=key):
        load_config(path)


def test_renaming_the_metric_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = _with_view(tmp_path, "{name: request_latency}")
    with pytest.raises(PgotelConfigError, match=r"meter_provider\.views\[1\]\.stream: pgotel records"):
        load_config(path)


def test_out_of_range_limits_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = _with_view(tmp_path, "{aggregation: {base2_exponential_bucket_histogram: {max_size: 1}}}")
    with pytest.raises(PgotelConfigError, match=r"base2_exponential_bucket_histogram -> max_size"):
        load_config(path)
