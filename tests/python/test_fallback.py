"""The remote fall-back from Python, against a real HTTP server: headroomd itself, started here
on a loopback port with the tiny model. A model opened on it streams the same greedy text as
the local one; a context whose registry cannot load a model here (pressure is critical by its
thresholds) serves it through the fall-back and says so in the event, the registry and the
metrics; bad endpoints raise with the library's sentence."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

import headroom

from test_generation import GREEDY

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def server(headroomd: Path, tiny_model: Path, tmp_path_factory) -> Iterator[str]:
    if not headroomd.exists():
        pytest.skip(f"headroomd is not built at {headroomd}")
    logs = tmp_path_factory.mktemp("headroomd")
    out, err = open(logs / "out", "w+"), open(logs / "err", "w+")
    process = subprocess.Popen([str(headroomd), "--model", str(tiny_model), "--port", "0", "--ctx", "256",
                                "--threads", "1"], stdout=out, stderr=err)
    url = None
    for _ in range(300):   # 15 s: a sanitizer build starts slowly
        text = (logs / "out").read_text()
        match = re.search(r"headroomd: listening on http://[^:]+:(\d+) \(", text)
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            break
        if process.poll() is not None:
            break
        time.sleep(0.05)
    assert url, f"headroomd did not start: {(logs / 'err').read_text()[-2000:]}"
    try:
        yield url
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0, (logs / "err").read_text()[-2000:]


def test_a_remote_model_streams_what_the_local_one_does(hr, tiny_model, server):
    with hr.load(tiny_model, ctx=256) as local:
        expected = local.complete(PROMPT, max_tokens=10, **GREEDY)
    with hr.load_remote(server, "tiny", path=tiny_model) as remote:
        info = remote.info()
        assert info.remote and info.endpoint == server and info.weight_bytes == 0
        stream = remote.generate(PROMPT, max_tokens=10, **GREEDY)
        pieces = list(stream)
        assert "".join(pieces) == expected and len(pieces) > 1
        assert stream.stats.generated_tokens == 10
        # leaving a remote stream early hangs up on the server, and the model serves on
        for i, _ in enumerate(remote.generate(PROMPT, max_tokens=200)):
            if i == 1:
                break
        assert remote.complete(PROMPT, max_tokens=10, **GREEDY) == expected
    records = hr.metrics()
    assert [r.served_by for r in records] == ["local", "fallback", "fallback", "fallback"]
    assert records[2].cancelled


def test_the_registry_falls_back_when_the_model_cannot_be_had_here(tmp_path, tiny_model, server):
    # thresholds no machine meets: pressure is critical, so loads here are refused
    with headroom.Context(cache_dir=tmp_path, fallback=headroom.Remote(server, model="tiny"),
                          thresholds={"warn_free_percent": 99.95, "critical_free_percent": 99.9},
                          pressure_actions=False) as hr:
        assert hr.pressure().level == "critical"
        events = hr.subscribe(types=["model"])
        hr.models.add("local-name", tiny_model, ctx=256)
        text = hr.models.complete("local-name", PROMPT, max_tokens=10, keep_alive=-1, **GREEDY)
        assert text
        loaded = events.wait_for(lambda e: e.action == "loaded", 10)
        assert "served by the fall-back" in loaded.reason and server in loaded.reason
        assert "critical" in loaded.reason
        assert hr.models.get("local-name").served_by == "fallback"
        assert hr.metrics()[-1].served_by == "fallback"
    # the same request without a fall-back is refused, with the reason: pressure is critical, or
    # (judged on memory sampled now) the load does not fit above the critical band kept free
    with headroom.Context(cache_dir=tmp_path, thresholds={"warn_free_percent": 99.95,
                                                          "critical_free_percent": 99.9}) as hr:
        hr.models.add("tiny", tiny_model, ctx=256)
        with pytest.raises(headroom.MemoryRefusedError, match="critical|does not fit"):
            hr.models.complete("tiny", PROMPT, max_tokens=4)


def test_bad_endpoints_raise_with_the_library_sentence(hr, tiny_model, server):
    with pytest.raises(headroom.NotFoundError, match="tiny"):   # the sentence lists what it serves
        hr.load_remote(server, "no-such-model")
    with pytest.raises(headroom.HeadroomIOError):
        hr.load_remote(headroom.Remote("http://127.0.0.1:9", model="tiny", connect_timeout=2))
