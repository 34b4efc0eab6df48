"""Packaging: `pip install ./python` offline (no index at all), the installed package finding
libheadroom in the build tree it came from, through pkg-config in an installed prefix, at
HEADROOM_LIBRARY, and saying clearly when it cannot; the example runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUILD, SOURCE


def run(args, env=None, cwd=None, timeout=120):
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    if run([sys.executable, "-m", "pip", "--version"]).returncode != 0:
        pytest.skip(f"no pip for {sys.executable} (Debian: python3-pip)")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = run([sys.executable, "-m", "pip", "install", "--no-index", "--target", str(target),
                  str(SOURCE / "python")], env=env, cwd=target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "headroom" / "__init__.py").exists() and (target / "headroom" / "py.typed").exists()
    return target


def clean_env(site: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HEADROOM_LIBRARY", "PKG_CONFIG_PATH", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), **extra)
    return env


def test_the_installed_package_finds_the_build_tree_it_came_from(installed, tmp_path):
    result = run([sys.executable, "-c", "import headroom; print(headroom.__file__); print(headroom.library_path()); "
                  "print(headroom.check_memory_pressure()['level'])"], env=clean_env(installed), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    module, library, level = result.stdout.split("\n")[:3]
    assert module.startswith(str(installed))
    assert Path(library).resolve().parent == (BUILD / "src").resolve()
    assert level in ("normal", "warn", "critical")


def test_headroom_library_is_used_and_a_wrong_one_is_explained(installed, tmp_path):
    library = BUILD / "src" / "libheadroom.so"
    result = run([sys.executable, "-c", "import headroom; print(headroom.library_path())"],
                 env=clean_env(installed, HEADROOM_LIBRARY=str(library.parent)), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == str(library), result.stderr
    result = run([sys.executable, "-c", "import headroom; headroom.version()"],
                 env=clean_env(installed, HEADROOM_LIBRARY=str(tmp_path / "nowhere.so")), cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "LibraryNotFoundError" in last and "nowhere.so" in last and "HEADROOM_LIBRARY" in last


def test_an_installed_prefix_is_found_through_pkg_config(installed, tmp_path):
    if run(["pkg-config", "--version"]).returncode != 0:
        pytest.skip("pkg-config is not installed")
    prefix = tmp_path / "prefix"
    result = run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)])
    assert result.returncode == 0, result.stderr
    [pc] = list(prefix.rglob("headroom.pc"))
    (installed / "headroom" / "_origin.py").rename(tmp_path / "_origin.py")   # forget the build tree
    try:
        env = clean_env(installed, PKG_CONFIG_PATH=str(pc.parent))
        result = run([sys.executable, "-c", "import headroom; print(headroom.library_path()); print(headroom.version())"],
                     env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        library, version = result.stdout.split("\n")[:2]
        assert library.startswith(str(prefix)) and version
        # without pkg-config's path and with no library in the usual prefixes: the message says where it looked
        result = run([sys.executable, "-c", "import headroom; print(headroom.library_path())"],
                     env=clean_env(installed), cwd=tmp_path)
        if result.returncode == 0:
            assert not result.stdout.startswith(str(BUILD))   # found in a real prefix of this machine
        else:
            last = result.stderr.strip().splitlines()[-1]
            assert "libheadroom was not found" in last and "pkg-config" in last and "HEADROOM_LIBRARY" in last
    finally:
        (tmp_path / "_origin.py").rename(installed / "headroom" / "_origin.py")


def test_the_example_checks_pressure_loads_with_keep_alive_and_streams(installed, tiny_model, tmp_path):
    result = run([sys.executable, str(SOURCE / "python" / "examples" / "stream.py"), str(tiny_model), "Hello"],
                 env=clean_env(installed, HEADROOM_CACHE_DIR=str(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("{'level': ") and "'binding_scope'" in lines[0]
    assert "\n".join(lines[1:-1]).strip()                   # the streamed answer
    assert lines[-1].startswith("ready ") and lines[-1].endswith("tokens/s")   # kept: keep-alive 5m
