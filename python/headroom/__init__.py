"""headroom: memory-aware local language models, from Python.

A binding of libheadroom's public C API (include/headroom.h) through ctypes: no compiled
extension, nothing to build. The library is found in the headroom build tree, an installed
prefix, through pkg-config or at $HEADROOM_LIBRARY (headroom._library says the order).

    import headroom

    print(headroom.check_memory_pressure())            # the SDK request's dict
    with headroom.Context(keep_alive="5m") as hr:
        hr.models.add("demo", "demo.gguf")
        for piece in hr.models.generate("demo", "Once upon a time", max_tokens=32):
            print(piece, end="", flush=True)

docs/python.md describes the whole API.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Union

from . import errors
from ._library import lib as _lib
from ._library import path as _path
from ._convert import KeepAlive, keep_alive_seconds
from .cache import Cache
from .context import Context, Subscription
from .registry import Registry
from .errors import (AccessError, AgainError, BusyError, CancelledError, ContextFullError,
                     EngineError, FormatError, HeadroomError, HeadroomIOError, InvalidArgumentError,
                     LibraryNotFoundError, MemoryRefusedError, NotFoundError, NotSupportedError,
                     OutOfMemoryError, QueueFullError)
from .generation import Model, Stream
from .types import (CacheEntry, CacheProblem, CacheStatus, ClearReport, DeviceEstimate, Event,
                    GenerationRecord, GenerationStats, GpuStatus, MemoryStatus, ModelInfo, Preflight,
                    Pressure, RegistryEntry, Remote)

__version__ = "0.1.0"

__all__ = [
    "Context", "Model", "Stream", "Registry", "Cache", "Subscription", "Remote", "KeepAlive",
    "check_memory_pressure", "check", "memory", "pressure", "cache_size", "clear_cache", "version",
    "library_path",
    "default_context", "keep_alive_seconds", "errors",
    "HeadroomError", "LibraryNotFoundError", "InvalidArgumentError", "OutOfMemoryError",
    "NotFoundError", "AccessError", "HeadroomIOError", "FormatError", "EngineError",
    "CancelledError", "ContextFullError", "NotSupportedError", "BusyError", "AgainError",
    "MemoryRefusedError", "QueueFullError",
    "Pressure", "MemoryStatus", "GpuStatus", "Event", "Preflight", "DeviceEstimate", "ModelInfo",
    "GenerationStats", "GenerationRecord", "RegistryEntry", "CacheEntry", "CacheStatus",
    "CacheProblem", "ClearReport",
]

_default: Optional[Context] = None
_default_lock = threading.Lock()

GIB = 1024 ** 3


def default_context() -> Context:
    """The context the module-level functions use: made on first use, with no monitor thread
    (each call samples memory on the calling thread) and no registry models. Closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Context(monitor=False, pressure_actions=False, guard=False)
        return _default


def check_memory_pressure() -> Dict[str, Any]:
    """The Python SDK request's call: memory pressure as a dict with exactly its keys

    - ``level``: "normal", "warn" or "critical";
    - ``free_percent``: effective available memory as a share (0-100) of the scope that binds;
    - ``swap_used_gb``: swap in use, GiB;
    - ``page_ins``, ``page_outs``: pages swapped in and out since boot;
    - ``reason``: in words, what drives the level;

    plus ``effective_available_bytes`` (what this process can still get, the least over the host
    and every cgroup that limits it) and ``binding_scope`` (which of those binds: "host",
    "cgroup /app (memory.max)", ...). Cross-platform through libheadroom: Linux's
    /proc/meminfo, cgroups, PSI and vmstat; macOS's memorystatus and VM statistics."""
    p = default_context().pressure()
    return {
        "level": p.level,
        "free_percent": p.free_percent,
        "swap_used_gb": p.swap_used_bytes / GIB,
        "page_ins": p.page_ins,
        "page_outs": p.page_outs,
        "reason": p.reason,
        "effective_available_bytes": p.effective_available_bytes,
        "binding_scope": p.binding_scope,
    }


def pressure() -> Pressure:
    """The pressure with every field (the default context's)."""
    return default_context().pressure()


def memory() -> MemoryStatus:
    """The memory watermark now: host, binding scope, this process, GPUs."""
    return default_context().memory()


def check(model: "Union[str, os.PathLike[str]]", ctx: Optional[int] = None, **params: Any) -> Preflight:
    """Preflight: will `model` (a GGUF path) fit with a `ctx`-token context window, now? The
    verdict ("ok", "warn", "refuse"), the reason, guidance and the per-device table (host RAM,
    each GPU). Parameters as Context.check."""
    return default_context().check(model, ctx, **params)


def cache_size() -> int:
    """Bytes of headroom's KV snapshots in its cache directory ($HEADROOM_CACHE_DIR, else
    $XDG_CACHE_HOME/headroom, else ~/.cache/headroom)."""
    return default_context().cache.size()


def clear_cache(raise_on_failure: bool = True) -> ClearReport:
    """Removes headroom's own files from its cache directory (never anything else) and reports
    what it removed and what it could not; a file it may not remove raises AccessError (a
    PermissionError) with the sentence, unless `raise_on_failure` is false. Cache.clear."""
    return default_context().cache.clear(raise_on_failure=raise_on_failure)


def version() -> str:
    """libheadroom's version, "MAJOR.MINOR.PATCH"."""
    return (_lib().hr_version() or b"").decode()


def library_path() -> str:
    """The libheadroom file in use (loading it if needed)."""
    return _path()
