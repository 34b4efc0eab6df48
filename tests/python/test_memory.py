"""A cancelled stream gives its memory back, measured: the process's RSS and the registry's
state. Not run in the sanitizer build (tests/CMakeLists.txt disables it there): freed memory
waits in ASan's quarantine and shadow memory doubles the footprint, so RSS is not what users get."""
from __future__ import annotations

import headroom

from conftest import MiB
from test_generation import wait_until


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
