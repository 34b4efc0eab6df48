"""Conversions shared by the package's rooms: structs and JSON to dataclasses, keep-alive values
and load modes to what the C API takes."""
from __future__ import annotations

import ctypes
import datetime
import math
from ctypes import byref, c_double
from typing import Any, Dict, Union

from . import _structs as s
from ._library import check, encode, lib
from .errors import InvalidArgumentError

KeepAlive = Union[None, int, float, str, datetime.timedelta]

_LOAD_MODES = {"auto": 0, "mmap": 1, "copy": 2, "mlock": 3}


def keep_alive_seconds(value: KeepAlive) -> float:
    """A keep-alive in Ollama's convention as seconds: None (NaN: the model's own, else the
    context's), a number of seconds (0: unload after this use; negative: never), a timedelta,
    or text: "300", "30s", "5m", "1h30m", "never", "-1" (parsed by hr_keep_alive_parse)."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise InvalidArgumentError(f"keep_alive {value!r} is not a duration: give seconds, '5m' or 'never'")
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        seconds = c_double()
        check(lib().hr_keep_alive_parse(encode(value), byref(seconds)))
        return seconds.value
    raise InvalidArgumentError(f"keep_alive {value!r} is not a duration: give seconds, '5m' or 'never'")


def load_mode_value(mode: Union[str, int]) -> int:
    if isinstance(mode, int):
        return mode
    if mode not in _LOAD_MODES:
        raise InvalidArgumentError(f"load_mode {mode!r} is not one of {', '.join(_LOAD_MODES)}")
    return _LOAD_MODES[mode]


def copy_struct(cls: type, struct: ctypes.Structure, **overrides: Any) -> Any:
    """A dataclass from a struct's fields of the same names (char arrays as str)."""
    values: Dict[str, Any] = {}
    for name in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        if name in overrides:
            values[name] = overrides[name]
        elif hasattr(struct, name):
            value = getattr(struct, name)
            values[name] = s.text(value) if isinstance(value, bytes) else value
    return cls(**values)


def from_json(cls: type, item: Dict[str, Any], **overrides: Any) -> Any:
    known = cls.__dataclass_fields__  # type: ignore[attr-defined]
    values = {k: v for k, v in item.items() if k in known}
    values.update(overrides)
    if "extra" in known:
        values["extra"] = {k: v for k, v in item.items() if k not in known}
    return cls(**values)
