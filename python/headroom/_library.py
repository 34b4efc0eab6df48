"""Finding and loading libheadroom, and the prototypes of the functions this package calls.

Only functions bound here by name are used; a library that lacks one fails at load with a
sentence naming it. The library is looked for, in order, at:
  1. $HEADROOM_LIBRARY (a file, or a directory holding libheadroom.so): then nowhere else;
  2. the build tree (build/src, build-asan/src) of the checkout this package sits in, or was
     pip-installed from;
  3. pkg-config's libdir for `headroom` (PKG_CONFIG_PATH is honoured);
  4. the installed prefixes: sys.prefix, /usr/local, /usr (lib, lib64, lib/<multiarch>);
  5. the dynamic loader's own search (ctypes.util.find_library, LD_LIBRARY_PATH).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from ctypes import (POINTER, c_bool, c_char_p, c_double, c_float, c_int, c_size_t, c_uint64, c_void_p)
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from . import _structs as s
from .errors import LibraryNotFoundError, error_for_code

_NAMES = ("libheadroom.so", "libheadroom.so.0", "libheadroom.dylib", "libheadroom.0.dylib")


def _files_in(directory: Path) -> Iterator[Path]:
    for name in _NAMES:
        yield directory / name


def _pkg_config_libdir() -> Optional[Path]:
    tool = shutil.which("pkg-config")
    if not tool:
        return None
    try:
        out = subprocess.run([tool, "--variable=libdir", "headroom"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = out.stdout.strip()
    return Path(libdir) if out.returncode == 0 and libdir else None


def _checkouts() -> List[Path]:
    """The headroom checkouts whose build trees may hold the library: the one this package sits
    in (python/headroom/ in a checkout), and the one it was pip-installed from (recorded by the
    build backend in _origin.py)."""
    found = []
    here = Path(__file__).resolve().parent.parent.parent
    if (here / "include" / "headroom.h").exists():
        found.append(here)
    try:
        from ._origin import CHECKOUT   # type: ignore[import-not-found]
        if Path(CHECKOUT) not in found:
            found.append(Path(CHECKOUT))
    except ImportError:
        pass
    return found


def candidates() -> List[Tuple[str, Path]]:
    """Where the library is looked for, in order: (how it was found, directory or file)."""
    env = os.environ.get("HEADROOM_LIBRARY")
    if env:
        return [("HEADROOM_LIBRARY", Path(env))]   # an explicit choice is never second-guessed
    found: List[Tuple[str, Path]] = []
    for checkout in _checkouts():
        for build in ("build", "build-asan"):
            found.append(("build tree", checkout / build / "src"))
    libdir = _pkg_config_libdir()
    if libdir:
        found.append(("pkg-config", libdir))
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    seen = set()
    for prefix in (sys.prefix, "/usr/local", "/usr"):
        for sub in ("lib", "lib64", f"lib/{multiarch}" if multiarch else None):
            directory = Path(prefix) / sub if sub else None
            if directory and directory not in seen:
                seen.add(directory)
                found.append(("prefix", directory))
    return found


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None


def _load(path: Path) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(path))
    except OSError as error:
        problem = str(error)
        if "ASan runtime does not come first" in problem or "libasan" in problem:
            raise LibraryNotFoundError(
                f"{path} is built with AddressSanitizer and cannot be loaded into this Python as it is: "
                f"run Python with LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0, "
                f"or point HEADROOM_LIBRARY at a normal build") from None
        raise LibraryNotFoundError(f"{path} exists but cannot be loaded: {problem}") from None


def _open() -> Tuple[ctypes.CDLL, str]:
    looked: List[str] = []
    for how, place in candidates():
        files = list(_files_in(place)) if place.is_dir() or how != "HEADROOM_LIBRARY" else [place]
        for file in files:
            if file.exists():
                return _load(file), str(file)
        if how == "HEADROOM_LIBRARY":
            raise LibraryNotFoundError(
                f"HEADROOM_LIBRARY is {place}, and there is no libheadroom there: point it at "
                f"libheadroom.so (or its directory), or unset it to search the usual places")
        looked.append(f"{place} ({how})")
    if _pkg_config_libdir() is None:
        looked.append("pkg-config (no headroom.pc on its path)" if shutil.which("pkg-config")
                      else "pkg-config (not installed)")
    name = ctypes.util.find_library("headroom")
    if name:
        try:
            return ctypes.CDLL(name), name
        except OSError as error:
            looked.append(f"{name} (the loader's search: {error})")
    else:
        looked.append("the dynamic loader's search (ldconfig, LD_LIBRARY_PATH)")
    raise LibraryNotFoundError(
        "libheadroom was not found. Build it (`make build` in the headroom checkout), install it "
        "(`make install PREFIX=/usr/local`, which also installs headroom.pc for pkg-config), or set "
        "HEADROOM_LIBRARY to the path of libheadroom.so. Looked in: " + ", ".join(looked))


def _bind(lib: ctypes.CDLL) -> None:
    def fn(name: str, restype, *argtypes) -> None:
        try:
            f = getattr(lib, name)
        except AttributeError:
            raise LibraryNotFoundError(
                f"{_path} has no {name}(): it is older than this Python package; rebuild headroom "
                f"or point HEADROOM_LIBRARY at a newer libheadroom") from None
        f.restype = restype
        f.argtypes = list(argtypes)

    P = POINTER
    fn("hr_strerror", c_char_p, c_int)
    fn("hr_last_error", c_char_p)
    fn("hr_version", c_char_p)
    fn("hr_free", None, c_void_p)
    fn("hr_context_default_params", s.padded(s.hr_context_params))
    fn("hr_context_create", c_int, c_void_p, P(c_void_p))
    fn("hr_context_free", None, c_void_p)
    fn("hr_memory_sample", c_int, c_void_p, c_void_p)
    fn("hr_pressure_check", c_int, c_void_p, c_void_p)
    fn("hr_pressure_level_name", c_char_p, c_int)
    fn("hr_pressure_json", c_void_p, c_void_p)
    fn("hr_memory_status_json", c_void_p, c_void_p)
    fn("hr_subscribe", c_int, c_void_p, s.EVENT_FN, c_void_p, P(c_int))
    fn("hr_unsubscribe", None, c_void_p, c_int)
    fn("hr_model_default_params", s.padded(s.hr_model_params))
    fn("hr_model_load", c_int, c_void_p, c_char_p, c_void_p, P(c_void_p))
    fn("hr_model_free", None, c_void_p)
    fn("hr_model_get_info", c_int, c_void_p, c_void_p)
    fn("hr_model_apply_chat_template", c_int, c_void_p, P(s.hr_chat_message), c_size_t, c_bool,
       P(c_void_p))
    fn("hr_model_cancel", None, c_void_p)
    fn("hr_model_embed", c_int, c_void_p, c_char_p, P(s.hr_embed_params), P(c_float), c_size_t,
       P(s.hr_embed_result))
    fn("hr_remote_default_params", s.padded(s.hr_remote_params))
    fn("hr_model_load_remote", c_int, c_void_p, c_char_p, c_void_p, P(c_void_p))
    fn("hr_verdict_name", c_char_p, c_int)
    fn("hr_preflight_default_params", s.padded(s.hr_preflight_params))
    fn("hr_preflight", c_int, c_void_p, c_char_p, c_void_p, c_void_p)
    fn("hr_preflight_json", c_void_p, c_void_p)
    fn("hr_generate_default_params", s.padded(s.hr_generate_params))
    fn("hr_session_default_params", s.padded(s.hr_session_params))
    fn("hr_session_start", c_int, c_void_p, c_char_p, c_void_p, P(c_void_p))
    fn("hr_session_read", c_int, c_void_p, c_void_p, c_size_t, P(c_size_t), c_double)
    fn("hr_session_cancel", None, c_void_p)
    fn("hr_session_stats", c_int, c_void_p, c_void_p)
    fn("hr_session_queued", c_bool, c_void_p)
    fn("hr_session_free", None, c_void_p)
    fn("hr_model_state_name", c_char_p, c_int)
    fn("hr_keep_alive_parse", c_int, c_char_p, P(c_double))
    fn("hr_registry_add", c_int, c_void_p, c_char_p, c_char_p, c_void_p)
    fn("hr_registry_acquire", c_int, c_void_p, c_char_p, P(c_void_p))
    fn("hr_registry_release", None, c_void_p, c_void_p, c_double)
    fn("hr_registry_load", c_int, c_void_p, c_char_p)
    fn("hr_registry_unload", c_int, c_void_p, c_char_p, c_bool)
    fn("hr_registry_pin", c_int, c_void_p, c_char_p, c_bool)
    fn("hr_registry_set_keep_alive", c_int, c_void_p, c_char_p, c_double)
    fn("hr_registry_json", c_void_p, c_void_p)
    fn("hr_model_snapshot_save", c_int, c_void_p, P(c_bool))
    fn("hr_model_snapshot_restore", c_int, c_void_p)
    fn("hr_cache_list", c_int, c_void_p, P(c_void_p), P(c_size_t))
    fn("hr_cache_get_status", c_int, c_void_p, c_void_p)
    fn("hr_cache_clear", c_int, c_void_p, c_void_p, s.CACHE_PROBLEM_FN, c_void_p)
    fn("hr_cache_release_memory", c_int, c_void_p, P(c_uint64))
    fn("hr_metrics_json", c_void_p, c_void_p)


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use); raises LibraryNotFoundError saying where it
    looked and what to do."""
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            loaded, _path = _open()
            _bind(loaded)
            _lib = loaded
    return _lib


def path() -> str:
    """The file the library was loaded from (loading it if needed)."""
    lib()
    assert _path is not None
    return _path


def last_error() -> str:
    return (lib().hr_last_error() or b"").decode("utf-8", "replace")


def check(code: int) -> int:
    """Raises the exception for a negative HR_E* code, with hr_last_error()'s sentence."""
    if code < 0:
        raise error_for_code(code, last_error())
    return code


def take_string(pointer: Optional[int]) -> Optional[str]:
    """A string the library returned for the caller to free: copied, then hr_free()d."""
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode("utf-8", "replace")
    finally:
        lib().hr_free(pointer)


def encode(value: "Optional[str | os.PathLike[str]]") -> Optional[bytes]:
    """A str or path as the bytes the C API takes (None stays NULL)."""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.fsencode(value)
    return value.encode("utf-8")
