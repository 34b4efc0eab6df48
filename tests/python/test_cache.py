"""The cache from Python: a KV snapshot saved, listed, sized; clearing it as a user who may not
remove it reports the permission error (path and sentence) and removes nothing; as its owner it
goes. CI runs as root, which may remove anything: the denied clear runs in a child process
that drops to uid/gid 65534 after loading the library (as tests/integration's unreadable-file
case does)."""
from __future__ import annotations

import json
import shutil
import os
import subprocess
import sys

import pytest

import headroom

import tempfile
from pathlib import Path

from conftest import BUILD, SOURCE

NOBODY = 65534

CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import headroom
headroom.version()                    # the library is loaded (its engine lives under /root) ...
os.setgroups([]); os.setgid(65534); os.setuid(65534)   # ... then the privileges go
hr = headroom.Context(monitor=False, cache_dir=sys.argv[2])
out = {"uid": os.getuid(), "listed": len(hr.cache.list())}
try:
    hr.cache.clear()
    out["raised"] = None
except headroom.HeadroomError as error:
    out.update(raised=type(error).__name__, permission=isinstance(error, PermissionError),
               sentence=str(error), code=error.code,
               report={"removed": error.report.removed, "failed": error.report.failed},
               problems=[(p.path, p.error, p.sentence) for p in error.report.problems])
report = hr.cache.clear(raise_on_failure=False)
out["quiet"] = {"failed": report.failed, "problems": len(report.problems)}
print(json.dumps(out))
"""


def save_snapshot(hr: headroom.Context, tiny_model) -> None:
    with hr.load(tiny_model, ctx=256) as model:
        model.complete("Once upon a time there was a cache", max_tokens=8, temperature=0)
        assert model.snapshot_save() is True
        assert model.snapshot_save() is False   # unchanged since: nothing new to save


def test_a_snapshot_is_listed_sized_and_cleared(hr, tiny_model):
    assert hr.cache.list() == [] and hr.cache.size() == 0
    save_snapshot(hr, tiny_model)
    entries = hr.cache.list()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.model == "tiny" and entry.tokens > 8 and entry.n_ctx == 256 and os.path.exists(entry.path)
    status = hr.cache.status()
    assert status.snapshots == 1 and status.used_bytes == entry.bytes == os.path.getsize(entry.path)
    assert status.directory.endswith("/kv") and status.budget_bytes == 2 << 30
    report = hr.cache.clear()
    assert (report.removed, report.failed, report.bytes_removed) == (1, 0, entry.bytes)
    assert hr.cache.list() == [] and not os.path.exists(entry.path)


def test_clearing_what_this_user_may_not_remove_reports_the_permission_error(tmp_path, tiny_model):
    if os.geteuid() != 0:
        pytest.skip("not root: cannot make a cache that another user reads but may not change")
    # under the build tree, not pytest's tmp_path: /tmp/pytest-of-root is closed to other users
    root = BUILD / "tests" / "scratch" / "python"
    root.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(dir=root))
    cache = tmp_path / "cache"
    with headroom.Context(monitor=False, cache_dir=cache) as hr:
        save_snapshot(hr, tiny_model)
        [entry] = hr.cache.list()
    # uid 65534 may read the cache (the path and the files) but not change kv/
    for path in (root, tmp_path, cache, cache / "kv"):
        os.chmod(path, 0o755)
    os.chmod(entry.path, 0o644)
    child = subprocess.run([sys.executable, "-c", CHILD, str(SOURCE / "python"), str(cache)],
                           capture_output=True, text=True, timeout=60)
    if child.returncode != 0 and "Operation not permitted" in child.stderr:
        pytest.skip(f"cannot drop to uid {NOBODY} here: {child.stderr.strip().splitlines()[-1]}")
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["uid"] == NOBODY and out["listed"] == 1
    assert out["raised"] == "AccessError" and out["permission"] and out["code"] == -4
    assert "could not be removed" in out["sentence"] and "Permission denied" in out["sentence"]
    assert out["report"] == {"removed": 0, "failed": 1}
    [(path, error, sentence)] = out["problems"]
    assert path == entry.path and error == "HR_EACCES" and "permissions" in sentence
    assert out["quiet"] == {"failed": 1, "problems": 1}   # raise_on_failure=False: a report, no exception
    # nothing was lost; its owner clears it
    assert os.path.exists(entry.path)
    with headroom.Context(monitor=False, cache_dir=cache) as hr:
        assert hr.cache.clear().removed == 1
        assert hr.cache.list() == []
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_module_shortcuts_use_the_default_cache_directory(tmp_path, tiny_model):
    """headroom.cache_size() and clear_cache(), in a child process whose HEADROOM_CACHE_DIR is
    its own (the suite's shared cache directory is left alone)."""
    with headroom.Context(monitor=False, cache_dir=tmp_path) as hr:
        save_snapshot(hr, tiny_model)
        size = hr.cache.size()
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import headroom; "
            "print(headroom.cache_size()); r = headroom.clear_cache(); print(r.removed, r.bytes_removed); "
            "print(headroom.cache_size())")
    child = subprocess.run([sys.executable, "-c", code, str(SOURCE / "python")], capture_output=True, text=True,
                           env=dict(os.environ, HEADROOM_CACHE_DIR=str(tmp_path)), timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split("\n")[:3] == [str(size), f"1 {size}", "0"]
