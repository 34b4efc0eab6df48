"""Pressure and memory from Python: the seed-shaped dict, the dataclasses, the thresholds, the
errors as exceptions with the library's sentence."""
from __future__ import annotations

import threading

import pytest

import headroom

SEED_KEYS = {"level", "free_percent", "swap_used_gb", "page_ins", "page_outs", "reason"}


def meminfo() -> dict:
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            values[key] = int(rest.split()[0]) * 1024
    return values


def test_check_memory_pressure_has_exactly_the_seed_keys_plus_the_binding_scope():
    result = headroom.check_memory_pressure()
    assert set(result) == SEED_KEYS | {"effective_available_bytes", "binding_scope"}
    assert result["level"] in ("normal", "warn", "critical")
    assert 0 < result["free_percent"] <= 100
    assert isinstance(result["page_ins"], int) and isinstance(result["page_outs"], int)
    assert isinstance(result["swap_used_gb"], float) and result["swap_used_gb"] >= 0
    assert result["reason"] and result["binding_scope"]
    # the machine's own figures: swap in use from /proc/meminfo, available no more than the host's
    info = meminfo()
    swap_used = (info["SwapTotal"] - info["SwapFree"]) / 1024 ** 3
    assert abs(result["swap_used_gb"] - swap_used) < 0.25
    assert result["effective_available_bytes"] <= info["MemTotal"]
    assert result["effective_available_bytes"] > 0


def test_pressure_and_memory_agree_with_the_library_json(hr):
    p = hr.pressure()
    j = hr.pressure_json()
    assert p.level == j["level"] and p.binding_scope == j["binding_scope"] and p.detection == j["detection"]
    m = hr.memory()
    assert m.host_total_bytes == meminfo()["MemTotal"]
    assert 0 < m.process_rss_bytes <= m.process_peak_rss_bytes
    assert m.effective_available_bytes <= m.effective_total_bytes
    assert m.binding_scope == hr.memory_json()["binding_scope"]


def test_thresholds_decide_the_level_and_the_reason_says_why():
    # more than 99.9% free is impossible on a running machine: critical, with the share in the reason
    with headroom.Context(monitor=False, thresholds={"warn_free_percent": 99.95,
                                                     "critical_free_percent": 99.9}) as hr:
        p = hr.pressure()
        assert p.level == "critical", p.reason
        assert "%" in p.reason


def test_an_unknown_threshold_is_refused_with_the_known_names():
    with pytest.raises(headroom.InvalidArgumentError, match="warn_free_percent"):
        headroom.Context(monitor=False, thresholds={"warn_free": 10})


def test_events_reach_a_callback_on_the_python_thread(tiny_model, tmp_path):
    got = []
    arrived = threading.Event()

    def on_event(event: headroom.Event) -> None:
        got.append((event, threading.current_thread().name))
        arrived.set()

    with headroom.Context(cache_dir=tmp_path) as hr:
        hr.subscribe(on_event, types=["model"])
        hr.models.add("tiny", tiny_model, ctx=256)
        hr.models.load("tiny")
        assert arrived.wait(10), "no model event within 10 s"
    with pytest.raises(headroom.InvalidArgumentError, match="pressure, model, action, degraded"):
        hr.subscribe(types=["loads"])
    event, thread = got[0]
    assert thread == "headroom-events"   # not hr-lifecycle, not the caller
    assert (event.type, event.action, event.model) == ("model", "loaded", "tiny")
    assert "RSS" in event.reason


def test_log_lines_reach_a_log_callback_on_the_python_thread(tiny_model, tmp_path):
    lines = []
    with headroom.Context(cache_dir=tmp_path, log_level="info",
                          log=lambda level, message: lines.append((level, message, threading.current_thread().name))) as hr:
        with hr.load(tiny_model, ctx=256):
            pass
    assert any(level == "info" and "loaded" in message for level, message, _ in lines), lines
    assert {thread for *_, thread in lines} == {"headroom-events"}


def test_errors_are_exceptions_with_the_library_sentence(tmp_path, hr):
    with pytest.raises(headroom.NotFoundError) as missing:
        hr.load(tmp_path / "absent.gguf")
    assert isinstance(missing.value, FileNotFoundError)
    assert str(tmp_path / "absent.gguf") in str(missing.value) and missing.value.code == -3
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is not a model\n" * 100)
    with pytest.raises(headroom.FormatError) as bad:
        hr.load(not_gguf)
    assert "GGUF" in str(bad.value) or "gguf" in str(bad.value)
    with pytest.raises(headroom.InvalidArgumentError, match="never"):
        headroom.keep_alive_seconds("soon")
    with pytest.raises(headroom.NotFoundError):
        hr.models.load("nobody-added-this")
    assert headroom.keep_alive_seconds("1h30m") == 5400 and headroom.keep_alive_seconds("never") < 0


def test_a_closed_context_says_so(tmp_path):
    hr = headroom.Context(monitor=False, cache_dir=tmp_path)
    hr.close()
    hr.close()   # twice is fine
    with pytest.raises(headroom.InvalidArgumentError, match="closed"):
        hr.pressure()
