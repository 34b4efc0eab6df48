"""Real memory pressure, contained, seen from Python: this process moves into a child memory
cgroup limited to 256 MiB, a hog process in it takes memory step by step, and a subscription
must receive warn, then critical, then normal again after the hog exits, each on the
"headroom-events" Python thread, with no OOM kill. As tests/integration/test_pressure_live.c,
through the Python package. Skipped, with the reason, where no child memory cgroup can be made
(not root, no memory controller, not delegated); .ci/run fails that skip where one can."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import headroom

MiB = 1024 * 1024
LIMIT_MIB = 256

HOG = r"""
import os, sys
try:
    with open("/proc/self/oom_score_adj", "w") as f:   # if the kernel must kill, the hog goes first
        f.write("1000")
except OSError:
    pass
blocks = []
for line in sys.stdin:
    target = int(line)
    while len(blocks) < min(target, 1024):
        blocks.append(b"\x5a" * (1024 * 1024))   # written, so charged
    print(len(blocks), flush=True)
"""


def own_memory_cgroup() -> Optional[Tuple[int, Path]]:
    """(version, directory) of this process's memory cgroup: v1's memory line first, else v2."""
    found = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            path = "" if path == "/" else path
            if "memory" in controllers.split(","):
                return 1, Path(f"/sys/fs/cgroup/memory{path}")
            if controllers == "" and found is None:
                found = (2, Path(f"/sys/fs/cgroup{path}"))
    return found


@pytest.fixture
def limited_cgroup() -> Iterator[Tuple[int, Path]]:
    if os.geteuid() != 0:
        pytest.skip("not root: cannot create a child memory cgroup")
    own = own_memory_cgroup()
    if own is None:
        pytest.skip("no memory cgroup in /proc/self/cgroup")
    version, parent = own
    if version == 2:
        controllers = parent / "cgroup.controllers"
        if not controllers.exists() or "memory" not in controllers.read_text().split():
            pytest.skip(f"the memory controller is not available in {parent}")
    child = parent / f"headroom-pytest-{os.getpid()}"
    try:
        child.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create {child}: {error.strerror}")
    try:
        (child / ("memory.limit_in_bytes" if version == 1 else "memory.max")).write_text(str(LIMIT_MIB * MiB))
    except OSError as error:
        child.rmdir()
        pytest.skip(f"cannot set a memory limit on {child} (memory controller not delegated?): {error.strerror}")
    (child / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield version, child
    finally:
        (parent / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):
            try:
                child.rmdir()
                break
            except OSError:
                threading.Event().wait(0.1)


def oom_kills(version: int, child: Path) -> int:
    name = "memory.oom_control" if version == 1 else "memory.events"
    for line in (child / name).read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return -1


class Hog:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def hold(self, mib: int) -> int:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(f"{mib}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        return int(line) if line else -1

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def test_a_hog_in_a_child_cgroup_drives_warn_critical_and_back(limited_cgroup, tmp_path):
    version, child = limited_cgroup
    threads: List[str] = []
    hog = Hog()
    try:
        with headroom.Context(cache_dir=tmp_path, thresholds={"hold_seconds": 1.0}) as hr:
            events = hr.subscribe(types=["pressure"])
            hr.subscribe(lambda e: threads.append(threading.current_thread().name), types=["pressure"])
            start = hr.pressure()
            assert child.name in start.binding_scope, start.binding_scope   # the child cgroup binds
            assert start.effective_total_bytes == LIMIT_MIB * MiB and start.level == "normal", start.reason
            # each step sized from what is available before the hog holds anything (this process,
            # its threads and, under a sanitizer, its shadow memory are charged to the same cgroup)
            base = start.effective_available_bytes // MiB
            warn_target = base - LIMIT_MIB * 10 // 100        # about 10% left: under warn (15%)
            assert hog.hold(warn_target) == warn_target
            warn = events.wait_for(lambda e: e.level == "warn", 10)
            assert warn.previous_level == "normal" and warn.reason
            critical_target = base - LIMIT_MIB * 3 // 100     # about 3% left: under critical (5%)
            assert hog.hold(critical_target) == critical_target
            critical = events.wait_for(lambda e: e.level == "critical", 10)
            assert "%" in critical.reason
            seed = headroom.check_memory_pressure()   # the seed's call sees the child cgroup binding too
            assert child.name in seed["binding_scope"] and seed["free_percent"] < 15
            hog.stop()
            events.wait_for(lambda e: e.level == "normal", 15)
        assert oom_kills(version, child) == 0   # the hog was told when to stop, never killed
        assert len(threads) >= 3 and set(threads) == {"headroom-events"}
    finally:
        hog.stop()
