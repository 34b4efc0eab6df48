"""Exceptions: one class per HR_E* code of libheadroom, each carrying the library's sentence.

Every failed call raises the class for its code with ``hr_last_error()``'s sentence as its
message (what happened, what to do). The classes also derive from the built-in exception a
Python caller would expect (``FileNotFoundError`` for ``HR_ENOENT``, ``PermissionError`` for
``HR_EACCES``, ``TimeoutError`` for ``HR_EAGAIN``, ...), so ordinary ``except`` clauses work.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "HeadroomError", "LibraryNotFoundError", "InvalidArgumentError", "OutOfMemoryError",
    "NotFoundError", "AccessError", "HeadroomIOError", "FormatError", "EngineError",
    "CancelledError", "ContextFullError", "NotSupportedError", "BusyError", "AgainError",
    "EndOfStream", "MemoryRefusedError", "error_for_code",
]


class HeadroomError(Exception):
    """A libheadroom call failed. ``code`` is the HR_E* value, ``name`` its symbol
    ("HR_EFORMAT"), ``sentence`` (also ``str(error)``) the library's explanation."""

    code: int = 0
    name: str = "HR_ERROR"

    def __init__(self, sentence: str = "", code: Optional[int] = None):
        super().__init__(sentence)
        self.sentence = sentence
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.sentence or self.name


class LibraryNotFoundError(HeadroomError, ImportError):
    """libheadroom could not be found or loaded; the message lists where it was looked for."""


class InvalidArgumentError(HeadroomError, ValueError):
    """HR_EINVAL: an argument is invalid."""
    code, name = -1, "HR_EINVAL"


class OutOfMemoryError(HeadroomError, MemoryError):
    """HR_ENOMEM: an allocation failed."""
    code, name = -2, "HR_ENOMEM"


class NotFoundError(HeadroomError, FileNotFoundError):
    """HR_ENOENT: a file or a registry name does not exist."""
    code, name = -3, "HR_ENOENT"


class AccessError(HeadroomError, PermissionError):
    """HR_EACCES: a file exists but may not be read or removed, or a key was refused."""
    code, name = -4, "HR_EACCES"


class HeadroomIOError(HeadroomError, OSError):
    """HR_EIO: reading or writing failed (also: a remote server that cannot be reached)."""
    code, name = -5, "HR_EIO"


class FormatError(HeadroomError):
    """HR_EFORMAT: a file is not a valid model (not GGUF, truncated, corrupt)."""
    code, name = -6, "HR_EFORMAT"


class EngineError(HeadroomError, RuntimeError):
    """HR_EENGINE: the inference engine failed."""
    code, name = -7, "HR_EENGINE"


class CancelledError(HeadroomError):
    """HR_ECANCELLED: the operation was cancelled."""
    code, name = -8, "HR_ECANCELLED"


class ContextFullError(HeadroomError):
    """HR_ECONTEXT: the prompt does not fit the model's context window."""
    code, name = -9, "HR_ECONTEXT"


class NotSupportedError(HeadroomError):
    """HR_ENOTSUP: not supported on this platform or by this engine."""
    code, name = -10, "HR_ENOTSUP"


class BusyError(HeadroomError):
    """HR_EBUSY: the object is in use by another operation."""
    code, name = -11, "HR_EBUSY"


class AgainError(HeadroomError, TimeoutError):
    """HR_EAGAIN: nothing arrived in time."""
    code, name = -12, "HR_EAGAIN"


class EndOfStream(HeadroomError):
    """HR_EOF: not a failure; a stream ended (never raised by the public API)."""
    code, name = -13, "HR_EOF"


class MemoryRefusedError(HeadroomError):
    """HR_EMEMORY: refused for want of memory (a load that would not fit, or critical
    pressure); the sentence says what binds and what to do."""
    code, name = -14, "HR_EMEMORY"


class QueueFullError(HeadroomError):
    """HR_EFULL: refused for want of a place: every slot of the model runs a session and its
    queue of waiting ones is at its limit (max_queued); retry after a while."""
    code, name = -15, "HR_EFULL"


_BY_CODE: Dict[int, Type[HeadroomError]] = {
    cls.code: cls for cls in (
        InvalidArgumentError, OutOfMemoryError, NotFoundError, AccessError, HeadroomIOError,
        FormatError, EngineError, CancelledError, ContextFullError, NotSupportedError, BusyError,
        AgainError, EndOfStream, MemoryRefusedError, QueueFullError)
}


def error_for_code(code: int, sentence: str) -> HeadroomError:
    """The exception for an HR_E* code (a plain HeadroomError for a code this package does not
    know, e.g. one added to the library later)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return HeadroomError(sentence or f"headroom error {code}", code=code)
    return cls(sentence or cls.name)
