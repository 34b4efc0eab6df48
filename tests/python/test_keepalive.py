"""Registry models with keep-alive from Python: a model stays loaded for its keep-alive after
its last use and is then unloaded by the library's lifecycle thread; the event reaches a
subscriber on the Python thread."""
from __future__ import annotations

import threading
import time

import pytest

import headroom

from test_generation import GREEDY, wait_until


def test_an_idle_model_is_unloaded_when_its_keep_alive_expires(hr, tiny_model):
    threads = []
    sub = hr.subscribe(lambda e: threads.append(threading.current_thread().name), types=["model"])
    unloads = hr.subscribe(types=["model"])
    hr.models.add("tiny", tiny_model, ctx=256, keep_alive="1s")
    assert hr.models.get("tiny").keep_alive == 1
    assert hr.models.complete("tiny", "Hello", max_tokens=4, **GREEDY)
    entry = hr.models.get("tiny")
    assert entry.state == "ready" and entry.users == 0 and entry.expires_at > time.time()
    assert entry.served_by == "local" and entry.rss_bytes > 0
    loaded = unloads.wait_for(lambda e: e.action == "loaded", 10)
    assert loaded.model == "tiny"
    unloaded = unloads.wait_for(lambda e: e.action == "unloaded", 15)
    assert unloaded.model == "tiny" and "keep-alive expired" in unloaded.reason
    assert hr.models.get("tiny").state == "unloaded"
    assert set(threads) == {"headroom-events"}
    sub.close()


def test_a_request_keep_alive_overrides_the_models(hr, tiny_model):
    hr.models.add("tiny", tiny_model, ctx=256, keep_alive="1h")
    with hr.models.acquire("tiny", keep_alive=0) as model:
        assert hr.models.get("tiny").state == "busy"
        assert model.complete("Hello", max_tokens=4, **GREEDY)
    assert wait_until(lambda: hr.models.get("tiny").state == "unloaded")
    # never: stays, even past a short context-wide default
    hr.models.load("tiny")
    hr.models.set_keep_alive("tiny", "never")
    time.sleep(1.5)
    assert hr.models.get("tiny").state == "ready" and hr.models.get("tiny").expires_at == 0
    hr.models.unload("tiny")
    assert hr.models.get("tiny").state == "unloaded"


def test_pins_and_a_model_in_use(hr, tiny_model):
    hr.models.add("tiny", tiny_model, ctx=256, keep_alive=0, pinned=True)
    hr.models.load("tiny")
    time.sleep(0.5)
    assert hr.models.get("tiny").state == "ready" and hr.models.get("tiny").pinned   # pinned: kept
    with hr.models.acquire("tiny"):
        with pytest.raises(headroom.BusyError):
            hr.models.unload("tiny")
    hr.models.pin("tiny", False)
    hr.models.unload("tiny")
    assert "tiny" in hr.models and [e.name for e in hr.models] == ["tiny"]
