"""Shared fixtures of the Python package's tests: the models tests/CMakeLists.txt generates,
the binaries, a scratch folder; and the rule that a file whose tests skipped ends with exit
code 77 and a "skipped: REASON" line, which ctest reports as skipped (never as passed)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

SOURCE = Path(os.environ.get("HEADROOM_SOURCE", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(SOURCE / "python"))
BUILD = Path(os.environ.get("HEADROOM_TEST_BUILD", SOURCE / "build"))
os.environ.setdefault("HEADROOM_LIBRARY", str(BUILD / "src" / "libheadroom.so"))

import headroom  # noqa: E402  (after the path is set)

MiB = 1024 * 1024


def _model(variable: str, preset_args: list, name: str) -> Path:
    """A model tests/CMakeLists.txt made (its path in `variable`), else made here."""
    path = os.environ.get(variable)
    if path and Path(path).exists():
        return Path(path)
    out = BUILD / "tests" / "models" / name
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        mkmodel = os.environ.get("HEADROOM_TEST_MKMODEL", str(BUILD / "tools" / "mkmodel" / "headroom-mkmodel"))
        subprocess.run([mkmodel, *preset_args, "--quiet", "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny preset (5 MB, 512-token training context)."""
    return _model("HEADROOM_TEST_TINY", ["--preset", "tiny"], "tiny.gguf")


@pytest.fixture(scope="session")
def mid_model() -> Path:
    """The 158 MiB model of tests/CMakeLists.txt: its memory shows plainly in RSS."""
    return _model("HEADROOM_TEST_MID", ["--preset", "demo", "--n-embd", "1024", "--n-layer", "8", "--n-ff", "2816",
                                        "--n-head", "16", "--n-head-kv", "4"], "mid.gguf")


@pytest.fixture(scope="session")
def headroomd() -> Path:
    return Path(os.environ.get("HEADROOM_TEST_HEADROOMD", BUILD / "tools" / "headroomd" / "headroomd"))


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def hr(tmp_path: Path) -> Iterator[headroom.Context]:
    """A context of its own per test, its cache in the test's folder."""
    with headroom.Context(cache_dir=tmp_path / "cache") as context:
        yield context


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    failed = reporter.stats.get("failed", []) + reporter.stats.get("error", [])
    if skipped and not failed and exitstatus == 0:
        for report in skipped:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            sys.__stdout__.write(f"\nskipped: {report.nodeid}: {reason.removeprefix('Skipped: ')}\n")
        sys.__stdout__.flush()
        session.exitstatus = 77
