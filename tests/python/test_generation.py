"""Generation from Python: a stream is an iterator of pieces; leaving the loop in any way
cancels the generation and gives its memory back (the session, the model's use and, with
keep_alive 0, the model itself: measured in the process's RSS and the registry's state)."""
from __future__ import annotations

import gc
import time

import pytest

import headroom

from conftest import MiB, SANITIZED

GREEDY = dict(temperature=0, seed=7)


def wait_until(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_stream_yields_the_pieces_and_the_stats(hr, tiny_model):
    with hr.load(tiny_model, ctx=256) as model:
        stream = model.generate("Once upon a time", max_tokens=12, **GREEDY)
        pieces = list(stream)
        assert len(pieces) >= 2 and all(isinstance(p, str) for p in pieces)
        assert stream.finished and stream.text == "".join(pieces)
        assert stream.stats.generated_tokens == 12 and stream.stats.stop_reason == "max_tokens"
        assert stream.stats.prompt_tokens > 0
        # greedy: the same text again, through complete()
        assert model.complete("Once upon a time", max_tokens=12, **GREEDY) == stream.text
        assert model.info().n_ctx == 256
    record = hr.metrics()[-1]
    assert record.generated_tokens == 12 and not record.cancelled and record.result == "HR_OK"


def test_stop_sequences_and_sampling_parameters_reach_the_library(hr, tiny_model):
    with hr.load(tiny_model, ctx=256) as model:
        full = model.complete("Once upon a time", max_tokens=16, **GREEDY)
        words = full.split()
        assert len(words) >= 3
        cut = model.generate("Once upon a time", max_tokens=16, stop=[words[2]], **GREEDY)
        text = "".join(cut)
        assert cut.stats.stop_reason == "stop_sequence" and words[2] not in text
        assert full.startswith(text)
        with pytest.raises(TypeError, match="unknown generation parameter"):
            model.generate("x", temprature=0)


def registry_state(hr, name):
    entry = hr.models.get(name)
    return entry.state, entry.users


@pytest.mark.parametrize("leave", ["break", "exception", "garbage", "with"])
def test_leaving_the_loop_cancels_and_releases_the_model(hr, tiny_model, leave):
    hr.models.add("tiny", tiny_model, ctx=512, keep_alive=-1)
    max_tokens = 400
    if leave == "break":
        for i, _ in enumerate(hr.models.generate("tiny", "Once upon a time", max_tokens=max_tokens, **GREEDY)):
            assert registry_state(hr, "tiny") == ("busy", 1)
            if i == 2:
                break
    elif leave == "exception":
        with pytest.raises(KeyError):
            for i, _ in enumerate(hr.models.generate("tiny", "Once upon a time", max_tokens=max_tokens)):
                if i == 2:
                    raise KeyError("the caller's own error")
    elif leave == "garbage":
        stream = hr.models.generate("tiny", "Once upon a time", max_tokens=max_tokens)
        next(stream)
        assert registry_state(hr, "tiny") == ("busy", 1)
        del stream
        gc.collect()
    else:
        with hr.models.generate("tiny", "Once upon a time", max_tokens=max_tokens) as stream:
            next(stream)
            next(stream)
    # the use ended at once: the model is idle (kept: keep_alive never), nobody holds it
    assert registry_state(hr, "tiny") == ("ready", 0)
    # the generation stopped short: its record says cancelled, with fewer tokens than asked
    assert wait_until(lambda: len(hr.metrics()) == 1)
    record = hr.metrics()[0]
    assert record.cancelled and record.generated_tokens < max_tokens, record
    # and the model serves the next request straight away
    assert hr.models.complete("tiny", "Hello", max_tokens=4, **GREEDY)


def test_a_stream_cancelled_from_another_thread_ends_the_loop(hr, tiny_model):
    import threading
    with hr.load(tiny_model, ctx=512) as model:
        stream = model.generate("Once upon a time", max_tokens=400)
        next(stream)
        threading.Timer(0.05, stream.cancel).start()
        with pytest.raises(headroom.CancelledError):
            for _ in stream:
                pass
        assert stream.cancelled and stream.stats is not None and stream.stats.generated_tokens < 400


@pytest.mark.skipif(SANITIZED, reason="under AddressSanitizer freed memory waits in a quarantine: RSS is not what users get")
def test_a_cancelled_stream_gives_the_models_memory_back(tmp_path, mid_model):
    """keep_alive 0: leaving the loop unloads the model, and the process's RSS falls by what
    its load added (the 158 MiB model's weights and window)."""
    with headroom.Context(cache_dir=tmp_path, pressure_actions=False, guard=False) as hr:
        hr.models.add("mid", mid_model, ctx=256)
        before = hr.memory().process_rss_bytes
        stream = hr.models.generate("mid", "Once upon a time", max_tokens=200, keep_alive=0)
        next(stream)
        loaded = hr.memory().process_rss_bytes
        assert loaded - before > 100 * MiB, f"the model's load added only {(loaded - before) / MiB:.0f} MiB"
        assert hr.models.get("mid").state == "busy"
        stream.close()   # as a break would
        assert wait_until(lambda: hr.models.get("mid").state == "unloaded")
        assert wait_until(lambda: hr.memory().process_rss_bytes < before + 30 * MiB), \
            f"RSS {hr.memory().process_rss_bytes / MiB:.0f} MiB after, {before / MiB:.0f} MiB before the load"
        entry = hr.models.get("mid")
        assert "keep_alive 0" in entry.last_unload_reason and entry.users == 0
        assert hr.metrics()[0].cancelled


def test_a_model_closed_with_the_context(tmp_path, tiny_model):
    hr = headroom.Context(cache_dir=tmp_path)
    model = hr.load(tiny_model, ctx=256)
    stream = model.generate("Once upon a time", max_tokens=300)
    next(stream)
    hr.close()   # closes the stream, then the model, then the context
    with pytest.raises(StopIteration):
        next(stream)
    with pytest.raises(headroom.InvalidArgumentError, match="closed"):
        model.info()
