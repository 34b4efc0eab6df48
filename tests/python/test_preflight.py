"""Preflight from Python: check(model, ctx=...) gives the verdict, the reason and the
per-device table; a refusal is a result, a broken file an exception."""
from __future__ import annotations

import pytest

import headroom


def test_check_gives_verdict_reason_and_devices(tiny_model):
    result = headroom.check(tiny_model, ctx=256)
    assert result.verdict == "ok" and result.ok, result.reason
    assert result.reason.startswith("fits") and result.guidance == ""
    host = result.devices[0]
    assert host.name == "CPU" and not host.is_gpu
    assert host.total_bytes == host.weights_bytes + host.kv_bytes + host.compute_bytes + host.overhead_bytes
    assert host.weights_bytes > 0 and host.kv_bytes > 0
    assert result.n_ctx == 256 and result.n_ctx_train == 512 and result.method in ("engine", "formula")
    assert result.total_bytes >= host.total_bytes and result.available_bytes > result.total_bytes


def test_a_larger_window_needs_more_kv(tiny_model):
    small = headroom.check(tiny_model, ctx=256).devices[0].kv_bytes
    large = headroom.check(tiny_model, ctx=512).devices[0].kv_bytes
    assert large == 2 * small


def test_a_refusal_is_a_result_with_guidance(tiny_model):
    # a machine of 1 PiB would be needed: refused, with what is missing and what to do
    result = headroom.check(tiny_model, ctx=256, min_total_bytes=1 << 50)
    assert result.verdict == "refuse" and not result.ok
    assert result.reason and result.guidance
    assert result.min_total_bytes == 1 << 50


def test_check_through_a_context_and_its_errors(hr, tmp_path):
    with pytest.raises(headroom.NotFoundError, match="absent.gguf"):
        hr.check(tmp_path / "absent.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 8)
    with pytest.raises(headroom.FormatError):
        hr.check(truncated)
    with pytest.raises(headroom.InvalidArgumentError, match="load_mode"):
        hr.check(tmp_path / "absent.gguf", load_mode="swap")
