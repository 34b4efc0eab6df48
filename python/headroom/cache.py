"""headroom's cache directory of a context (ctx.cache): KV snapshots in <cache_dir>/kv/; size,
list, safe clearing that reports what it could not remove (docs/cache.md)."""
from __future__ import annotations

import ctypes
import weakref
from ctypes import byref, c_size_t, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, List, Optional

from . import _structs as s
from ._convert import copy_struct
from ._library import check, lib
from .errors import error_for_code
from .types import CacheEntry, CacheProblem, CacheStatus, ClearReport

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Cache"]


class Cache:
    """headroom's cache directory (ctx.cache): KV snapshots in <cache_dir>/kv/."""

    def __init__(self, context: Context) -> None:
        self._context = weakref.proxy(context)

    def list(self) -> List[CacheEntry]:
        """headroom's snapshots, most recently used first."""
        entries = c_void_p()
        count = c_size_t()
        check(lib().hr_cache_list(self._context.handle, byref(entries), byref(count)))
        try:
            array = ctypes.cast(entries, ctypes.POINTER(s.hr_cache_entry))
            return [copy_struct(CacheEntry, array[i]) for i in range(count.value)]
        finally:
            if entries.value:
                lib().hr_free(entries)

    def status(self) -> CacheStatus:
        """The directory, budget and use."""
        status = s.filled(s.hr_cache_status)
        check(lib().hr_cache_get_status(self._context.handle, byref(status)))
        return copy_struct(CacheStatus, status)

    def size(self) -> int:
        """Bytes of snapshots now."""
        return self.status().used_bytes

    def clear(self, *, raise_on_failure: bool = True) -> ClearReport:
        """Removes headroom's own files from kv/ (never anything else, no links followed). A
        file that cannot be removed does not stop the others; each is in the report's
        `problems`. With `raise_on_failure` (default) such a failure then raises the exception
        for its code (AccessError, a PermissionError, for a permission problem) with the
        library's sentence, and the report as its `.report`."""
        report = s.filled(s.hr_cache_clear_report)
        problems: List[CacheProblem] = []

        def on_problem(path: Optional[bytes], code: int, sentence: Optional[bytes], _user: Any) -> None:
            name = (lib().hr_strerror(code) or b"").decode()
            problems.append(CacheProblem(path=(path or b"").decode("utf-8", "replace"), code=code, error=name,
                                         sentence=(sentence or b"").decode("utf-8", "replace")))

        callback = s.CACHE_PROBLEM_FN(on_problem)
        rc = lib().hr_cache_clear(self._context.handle, byref(report), callback, None)
        result = copy_struct(ClearReport, report, problems=problems)
        if rc < 0 and (raise_on_failure or not problems):
            error = error_for_code(rc, (lib().hr_last_error() or b"").decode("utf-8", "replace"))
            error.report = result  # type: ignore[attr-defined]
            raise error
        return result

    def release_memory(self) -> int:
        """Drops the page cache the snapshot files hold; the bytes released."""
        released = c_uint64()
        check(lib().hr_cache_release_memory(self._context.handle, byref(released)))
        return released.value
