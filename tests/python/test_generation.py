"""Generation from Python: a stream is an iterator of pieces; leaving the loop in any way
cancels the generation and gives its memory back (the session, the model's use and, with
keep_alive 0, the model itself: measured in the process's RSS and the registry's state)."""
from __future__ import annotations

import gc
import math
import time

import pytest

import headroom


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
        assert model.info().n_ctx == 256 and model.info().slots >= 1
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


def test_a_reader_that_stops_reading_pauses_generation(hr, tiny_model):
    with hr.load(tiny_model, ctx=512) as model:
        stream = model.generate("Once upon a time", max_tokens=300, queue_capacity=4, temperature=0)
        next(stream)
        # the reader sleeps; the count settles (it would reach 300 in about 1.5 s if not held)
        held, deadline = stream.generated_tokens, time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = stream.generated_tokens
            if now == held:
                break
            held = now
        assert 1 <= held <= 1 + 4 + 1, f"{held} tokens generated while the reader slept"
        rest = list(stream)
        assert rest and stream.stats.generated_tokens > held + 4   # and goes on when it reads again


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


def test_closing_a_model_closes_its_streams_first(hr, tiny_model):
    model = hr.load(tiny_model, ctx=512)
    stream = model.generate("Once upon a time", max_tokens=400)
    next(stream)
    model.close()
    assert stream.cancelled and stream.stats is not None and stream.stats.generated_tokens < 400
    with pytest.raises(StopIteration):
        next(stream)


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


def test_embeddings_unit_length_plain_and_truncated(hr, tiny_model):
    with hr.load(tiny_model, ctx=256) as model:
        first = model.embed("hello world")
        assert len(first.vector) == model.info().n_embd and not first.truncated
        assert abs(math.fsum(x * x for x in first.vector) - 1) < 1e-4
        assert model.embed("hello world").vector == first.vector
        raw = model.embed("hello world", normalize=False)
        length = math.sqrt(math.fsum(x * x for x in raw.vector))
        assert all(abs(r / length - f) < 1e-4 for r, f in zip(raw.vector, first.vector))
        long_text = " the" * 6000
        with pytest.raises(headroom.errors.ContextFullError, match="embeddings take at most"):
            model.embed(long_text)
        cut = model.embed(long_text, truncate=True)
        assert cut.truncated and cut.input_tokens > cut.n_tokens > 0
        assert abs(math.fsum(x * x for x in cut.vector) - 1) < 1e-4


def test_a_stream_says_while_it_waits_for_a_slot(hr, tiny_model):
    # one slot: the second stream queues behind the first until the first ends
    with hr.load(tiny_model, ctx=256, slots=1) as model:
        first = model.generate("Once upon a time", max_tokens=200, queue_capacity=1, **GREEDY)
        next(first)   # running, and paused with its one-piece queue full
        second = model.generate("The river ran", max_tokens=4, **GREEDY)
        assert not first.queued
        assert wait_until(lambda: second.queued)
        time.sleep(0.3)
        assert second.queued   # still: the only slot is the first's
        first.close()
        assert "".join(second) and not second.queued
