"""The context (hr_context) and what hangs off it: pressure and memory, events, preflight, the
model registry, the cache and the metrics ring.

Threads: the library calls back on its own threads (hr-monitor, hr-lifecycle, workers). Those
callbacks only put what they carry on a queue; a Python thread per context, "headroom-events",
delivers events to subscribers and log lines to the `headroom` logger, so no Python callback of
yours ever runs on a library thread or holds one up.
"""
from __future__ import annotations

import ctypes
import datetime
import json
import logging
import math
import os
import queue
import threading
import time
import weakref
from contextlib import contextmanager
from ctypes import byref, c_double, c_int, c_size_t, c_uint64, c_void_p
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence, Union)

from . import _structs as s
from ._library import check, encode, lib, take_string
from .errors import AgainError, InvalidArgumentError, NotFoundError, error_for_code
from .generation import Model, Stream, model_params
from .types import (CacheEntry, CacheProblem, CacheStatus, ClearReport, DeviceEstimate, Event,
                    GenerationRecord, GpuStatus, MemoryStatus, Preflight, Pressure, RegistryEntry,
                    Remote)

__all__ = ["Context", "Subscription", "Registry", "Cache", "KeepAlive", "keep_alive_seconds"]

logger = logging.getLogger("headroom")
# A library's logger stays quiet until the application configures logging (then every automatic
# action shows, with its reason): logging.basicConfig(level=logging.INFO), or Context(log=...).
logger.addHandler(logging.NullHandler())

KeepAlive = Union[None, int, float, str, datetime.timedelta]

_LEVELS = ("normal", "warn", "critical")
_EVENT_TYPES = {1: "pressure", 2: "model", 3: "action", 4: "degraded"}
_LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3}
_PY_LOG = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_LOAD_MODES = {"auto": 0, "mmap": 1, "copy": 2, "mlock": 3}


def _level(value: int) -> str:
    return _LEVELS[value] if 0 <= value < len(_LEVELS) else str(value)


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


def _copy(cls: type, struct: ctypes.Structure, **overrides: Any) -> Any:
    """A dataclass from a struct's fields of the same names (char arrays as str)."""
    values: Dict[str, Any] = {}
    for name in cls.__dataclass_fields__:  # type: ignore[attr-defined]
        if name in overrides:
            values[name] = overrides[name]
        elif hasattr(struct, name):
            value = getattr(struct, name)
            values[name] = s.text(value) if isinstance(value, bytes) else value
    return cls(**values)


def _pressure(p: s.hr_pressure) -> Pressure:
    return _copy(Pressure, p, level=_level(p.level))


def _memory(m: s.hr_memory_status) -> MemoryStatus:
    gpus = [_copy(GpuStatus, m.gpus[i]) for i in range(min(max(m.n_gpus, 0), 8))]
    return _copy(MemoryStatus, m, gpus=gpus)


def _event(e: s.hr_event) -> Event:
    def string(value: Optional[bytes]) -> Optional[str]:
        return None if value is None else value.decode("utf-8", "replace")
    return Event(type=_EVENT_TYPES.get(e.type, str(e.type)), timestamp=e.timestamp, level=_level(e.level),
                 previous_level=_level(e.previous_level), reason=string(e.reason) or "",
                 model=string(e.model), action=string(e.action), bytes_freed=e.bytes_freed,
                 tokens_per_second=e.tokens_per_second,
                 expected_tokens_per_second=e.expected_tokens_per_second,
                 faults_per_token=e.faults_per_token)


def _preflight(r: s.hr_preflight_result) -> Preflight:
    devices = [_copy(DeviceEstimate, r.devices[i]) for i in range(min(r.n_devices, s.HR_MAX_DEVICES))]
    verdict = (lib().hr_verdict_name(r.verdict) or b"?").decode()
    return _copy(Preflight, r, verdict=verdict, devices=devices)


def _from_json(cls: type, item: Dict[str, Any], **overrides: Any) -> Any:
    known = cls.__dataclass_fields__  # type: ignore[attr-defined]
    values = {k: v for k, v in item.items() if k in known}
    values.update(overrides)
    if "extra" in known:
        values["extra"] = {k: v for k, v in item.items() if k not in known}
    return cls(**values)


def _remote_params(remote: Remote, keep: List[Any]) -> Any:
    """hr_remote_params from a Remote, started from the library's defaults (padded)."""
    params = lib().hr_remote_default_params()
    _fill_remote(params.base, remote, keep)
    return params


def _fill_remote(base: s.hr_remote_params, remote: Remote, keep: List[Any]) -> None:
    for name in ("url", "model", "api_key"):
        value = encode(getattr(remote, name))
        keep.append(value)
        setattr(base, name, value)
    base.connect_timeout = remote.connect_timeout
    base.timeout = remote.timeout
    if remote.extended_sampling is not None:
        base.extended_sampling = remote.extended_sampling


# ---- events and logs: queued by the library's threads, delivered by a Python thread ---------------

class Subscription:
    """A subscription to a context's events. With a callback, each event is passed to it on the
    context's "headroom-events" thread (an exception it raises is logged, not propagated); without
    one, events wait in a queue for get() / wait_for(). close() ends it."""

    def __init__(self, state: "_State", callback: Optional[Callable[[Event], Any]],
                 types: Optional[Sequence[str]]):
        self._state = state
        self.callback = callback
        self.types = frozenset(types) if types else None
        self._queue: "queue.Queue[Event]" = queue.Queue()
        self.closed = False

    def _deliver(self, event: Event) -> None:
        if self.closed or (self.types and event.type not in self.types):
            return
        if self.callback is None:
            self._queue.put(event)
            return
        try:
            self.callback(event)
        except Exception:   # a subscriber's bug must not stop other deliveries
            logger.exception("headroom: an event callback raised")

    def get(self, timeout: Optional[float] = None) -> Event:
        """The next event (queue mode), waiting up to `timeout` seconds (None: for ever);
        AgainError (a TimeoutError) when none came."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AgainError(f"no event within {timeout} s") from None

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """The first event for which `predicate` is true, within `timeout` seconds; AgainError,
        naming the events seen meanwhile, when none is."""
        deadline = time.monotonic() + timeout
        seen: List[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgainError(f"no matching event within {timeout} s; saw: {'; '.join(seen[-8:]) or 'none'}")
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(event):
                return event
            seen.append(f"{event.type} {event.action or event.level}: {event.reason[:120]}")

    def close(self) -> None:
        """Ends the subscription; no callback runs for it after this returns (unless called
        from inside that callback)."""
        if not self.closed:
            self.closed = True
            self._state.remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _State:
    """What a Context's finaliser needs, kept apart from the Context so that the library's
    callbacks (which hold this, not the Context) do not keep the Context alive."""

    def __init__(self) -> None:
        self.handle: Optional[int] = None
        self.lock = threading.RLock()
        self.queue: "queue.Queue[Any]" = queue.Queue()
        self.subscribers: List[Subscription] = []
        self.children: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.subscription_id: Optional[int] = None
        self.event_fn: Any = None
        self.log_fn: Any = None
        self.log_callback: Optional[Callable[[str, str], Any]] = None
        self.thread: Optional[threading.Thread] = None
        self.closed = False

    # the library's threads: copy what is valid only during the call, queue it, return at once
    def on_log(self, level: int, message: Optional[bytes], _user: Any) -> None:
        self.queue.put(("log", level, (message or b"").decode("utf-8", "replace")))

    def on_event(self, event: Any, _user: Any) -> None:
        self.queue.put(("event", _event(event.contents)))

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if item[0] == "log":
                _, level, message = item
                if self.log_callback is not None:
                    try:
                        self.log_callback(("debug", "info", "warn", "error")[level] if 0 <= level <= 3 else str(level), message)
                    except Exception:
                        logger.exception("headroom: the log callback raised")
                else:
                    logger.log(_PY_LOG.get(level, logging.INFO), "%s", message)
            else:
                with self.lock:
                    subscribers = list(self.subscribers)
                for subscriber in subscribers:
                    subscriber._deliver(item[1])

    def add(self, subscription: Subscription) -> None:
        with self.lock:
            if self.closed or self.handle is None:
                raise InvalidArgumentError("the context is closed")
            if self.subscription_id is None:
                ident = c_int()
                check(lib().hr_subscribe(self.handle, self.event_fn, None, byref(ident)))
                self.subscription_id = ident.value
            self.subscribers.append(subscription)

    def remove(self, subscription: Subscription) -> None:
        with self.lock:
            if subscription in self.subscribers:
                self.subscribers.remove(subscription)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            children = list(self.children)
        # streams first (they hold models), then models, then the context
        for child in sorted(children, key=lambda c: 0 if isinstance(c, Stream) else 1):
            try:
                child._close_for_context()
            except Exception:
                logger.exception("headroom: closing %r", child)
        handle, self.handle = self.handle, None
        if handle is not None:
            if self.subscription_id is not None:
                lib().hr_unsubscribe(handle, self.subscription_id)
            lib().hr_context_free(handle)
        self.queue.put(None)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)


class Context:
    """A headroom context (hr_context): it owns the pressure monitor, the model registry, the
    cache and the metrics ring. Every argument left None keeps the library's default
    (include/headroom.h, hr_context_params).

    Args:
        monitor: run the pressure monitor thread (needed for pressure events and actions).
        keep_alive: how long an idle registry model stays loaded (seconds, "5m", "never"; 0:
            unload when released).
        pressure_actions: under warn free caches and unload idle models; under critical also
            cancel low-priority work and refuse loads.
        guard: the degradation guard.
        cache_dir: headroom's cache directory (KV snapshots in its kv/).
        cache_budget_bytes: the most bytes of snapshots kept.
        fallback: a Remote (or its URL) the registry sends a model to when it cannot be served here.
        thresholds: pressure thresholds by hr_pressure_thresholds field name, e.g.
            {"warn_free_percent": 20, "hold_seconds": 1}.
        log_level: "debug", "info", "warn" or "error": lines below it are not passed on.
        log: a callable(level, message) for the library's log lines, called on the
            "headroom-events" thread; None: the `headroom` logging.Logger.

    Use it as a context manager, or call close(); it is closed at interpreter exit otherwise.
    """

    def __init__(self, *, monitor: Optional[bool] = None, keep_alive: KeepAlive = None,
                 pressure_actions: Optional[bool] = None, guard: Optional[bool] = None,
                 critical_cancel_priority: Optional[int] = None,
                 cache_dir: "Optional[Union[str, os.PathLike[str]]]" = None,
                 cache_budget_bytes: Optional[int] = None,
                 fallback: Union[None, str, Remote] = None,
                 thresholds: Optional[Dict[str, float]] = None,
                 sample_interval_min: Optional[float] = None,
                 sample_interval_max: Optional[float] = None,
                 metrics_capacity: Optional[int] = None,
                 log_level: str = "info",
                 log: Optional[Callable[[str, str], Any]] = None) -> None:
        L = lib()
        state = _State()
        state.log_callback = log
        state.log_fn = s.LOG_FN(state.on_log)
        state.event_fn = s.EVENT_FN(state.on_event)
        padded = L.hr_context_default_params()
        p = padded.base
        keep: List[Any] = []
        p.log_fn = state.log_fn
        if log_level not in _LOG_LEVELS:
            raise InvalidArgumentError(f"log_level {log_level!r} is not one of debug, info, warn, error")
        p.log_level = _LOG_LEVELS[log_level]
        if monitor is not None:
            p.monitor = monitor
        if keep_alive is not None:
            p.keep_alive = keep_alive_seconds(keep_alive)
        if pressure_actions is not None:
            p.pressure_actions = pressure_actions
        if guard is not None:
            p.guard = guard
        if critical_cancel_priority is not None:
            p.critical_cancel_priority = critical_cancel_priority
        if cache_dir is not None:
            keep.append(encode(cache_dir))
            p.cache_dir = keep[-1]
        if cache_budget_bytes is not None:
            p.cache_budget_bytes = cache_budget_bytes
        if sample_interval_min is not None:
            p.sample_interval_min = sample_interval_min
        if sample_interval_max is not None:
            p.sample_interval_max = sample_interval_max
        if metrics_capacity is not None:
            p.metrics_capacity = metrics_capacity
        for name, value in (thresholds or {}).items():
            if name not in dict(s.hr_pressure_thresholds._fields_):
                raise InvalidArgumentError(f"unknown pressure threshold {name!r}; known: "
                                           + ", ".join(f for f, _ in s.hr_pressure_thresholds._fields_))
            setattr(p.thresholds, name, float(value))
        if fallback is not None:
            _fill_remote(p.fallback, Remote(fallback) if isinstance(fallback, str) else fallback, keep)
        handle = c_void_p()
        check(L.hr_context_create(byref(padded), byref(handle)))
        state.handle = handle.value
        state.thread = threading.Thread(target=state.run, name="headroom-events", daemon=True)
        state.thread.start()
        self._state = state
        self._finalizer = weakref.finalize(self, state.close)
        self.models = Registry(self)
        self.cache = Cache(self)

    # ---- plumbing ----
    @property
    def handle(self) -> int:
        """The hr_context pointer; InvalidArgumentError once closed."""
        handle = self._state.handle
        if handle is None:
            raise InvalidArgumentError("the headroom context is closed")
        return handle

    def _adopt(self, child: Any) -> None:
        self._state.children.add(child)

    def close(self) -> None:
        """Closes every stream and model made through this context, then frees it."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._state.handle is None

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- memory and pressure ----
    def pressure(self) -> Pressure:
        """The current pressure level and its reasons (the monitor's latest classification, or
        a sample taken now when the context runs no monitor)."""
        p = s.filled(s.hr_pressure)
        check(lib().hr_pressure_check(self.handle, byref(p)))
        return _pressure(p)

    def memory(self) -> MemoryStatus:
        """A fresh sample of every memory source: host, the binding scope, the process, GPUs."""
        m = s.filled(s.hr_memory_status)
        check(lib().hr_memory_sample(self.handle, byref(m)))
        return _memory(m)

    def pressure_json(self) -> Dict[str, Any]:
        """The pressure as the library's JSON vocabulary (the same keys as `headroom pressure
        --json` and headroomd)."""
        p = s.filled(s.hr_pressure)
        check(lib().hr_pressure_check(self.handle, byref(p)))
        return json.loads(take_string(lib().hr_pressure_json(byref(p))) or "{}")

    def memory_json(self) -> Dict[str, Any]:
        m = s.filled(s.hr_memory_status)
        check(lib().hr_memory_sample(self.handle, byref(m)))
        return json.loads(take_string(lib().hr_memory_status_json(byref(m))) or "{}")

    # ---- events ----
    def subscribe(self, callback: Optional[Callable[[Event], Any]] = None, *,
                  types: Optional[Sequence[str]] = None) -> Subscription:
        """Subscribes to events ("pressure", "model", "action", "degraded"; `types` None: all).
        The callback runs on this context's "headroom-events" Python thread, never on a library
        thread; without a callback the Subscription queues events for get() / wait_for()."""
        subscription = Subscription(self._state, callback, types)
        self._state.add(subscription)
        return subscription

    # ---- preflight ----
    def check(self, path: "Union[str, os.PathLike[str]]", ctx: Optional[int] = None, *,
              n_batch: Optional[int] = None, n_gpu_layers: Optional[int] = None,
              load_mode: Optional[str] = None, type_k: Optional[str] = None,
              type_v: Optional[str] = None, min_total_bytes: Optional[int] = None,
              recommended_total_bytes: Optional[int] = None, min_free_bytes: Optional[int] = None,
              fallback: Optional[str] = None) -> Preflight:
        """Preflight: would loading `path` with a `ctx`-token window fit now? Returns the
        verdict ("ok", "warn", "refuse"), the reason, guidance and the per-device table; a
        refusal is a result, not an exception. A missing or broken file raises as a load would."""
        L = lib()
        padded = L.hr_preflight_default_params()
        p = padded.base
        keep: List[Any] = []
        if ctx is not None:
            p.n_ctx = ctx
        if n_batch is not None:
            p.n_batch = n_batch
        if n_gpu_layers is not None:
            p.n_gpu_layers = n_gpu_layers
        if load_mode is not None:
            p.load_mode = load_mode_value(load_mode)
        for name, value in (("type_k", type_k), ("type_v", type_v), ("fallback", fallback)):
            if value is not None:
                keep.append(encode(value))
                setattr(p, name, keep[-1])
        for name, value in (("min_total_bytes", min_total_bytes),
                            ("recommended_total_bytes", recommended_total_bytes),
                            ("min_free_bytes", min_free_bytes)):
            if value is not None:
                setattr(p, name, value)
        result = s.filled(s.hr_preflight_result)
        check(L.hr_preflight(self.handle, encode(path), byref(padded), byref(result)))
        return _preflight(result)

    # ---- models ----
    def load(self, path: "Union[str, os.PathLike[str]]", *, ctx: Optional[int] = None,
             progress: Optional[Callable[[float], Optional[bool]]] = None, **params: Any) -> Model:
        """Loads a GGUF model outside the registry (you own it: close() it, or use `with`).
        `ctx` is the context window; other parameters: n_batch, n_threads, n_gpu_layers,
        load_mode ("auto", "mmap", "copy", "mlock"), type_k, type_v. `progress(fraction)` is
        called on this thread; returning False cancels the load (CancelledError)."""
        keep: List[Any] = []
        padded = model_params(ctx, params, keep)
        if progress is not None:
            def on_progress(fraction: float, _user: Any) -> bool:
                try:
                    return progress(fraction) is not False
                except Exception:
                    logger.exception("headroom: the progress callback raised; cancelling the load")
                    return False
            keep.append(s.PROGRESS_FN(on_progress))
            padded.base.progress_fn = keep[-1]
        handle = c_void_p()
        check(lib().hr_model_load(self.handle, encode(path), byref(padded), byref(handle)))
        return Model(self, handle.value, owned=True)

    def load_remote(self, remote: Union[str, Remote], model: Optional[str] = None, *,
                    path: "Optional[Union[str, os.PathLike[str]]]" = None,
                    api_key: Optional[str] = None) -> Model:
        """Opens a model served by a remote OpenAI-compatible server (the fall-back engine).
        `path`, a local GGUF file, lends it its name and chat template (only its header is
        read). Checks GET /v1/models first: unreachable is HeadroomIOError, a refused key
        AccessError, a model the server does not list NotFoundError."""
        if isinstance(remote, str):
            remote = Remote(remote, model=model, api_key=api_key)
        if remote.model is None:
            raise InvalidArgumentError("load_remote needs the model name to ask the server for")
        keep: List[Any] = []
        params = _remote_params(remote, keep)
        handle = c_void_p()
        check(lib().hr_model_load_remote(self.handle, encode(path), byref(params), byref(handle)))
        return Model(self, handle.value, owned=True)

    # ---- metrics ----
    def metrics(self) -> List[GenerationRecord]:
        """The metrics ring: the last N generations, oldest first."""
        return [_from_json(GenerationRecord, item) for item in json.loads(self.metrics_json())]

    def metrics_json(self) -> str:
        """The metrics ring as the library's JSON array."""
        text = take_string(lib().hr_metrics_json(self.handle))
        if text is None:
            raise error_for_code(-2, "hr_metrics_json ran out of memory")
        return text


def load_mode_value(mode: Union[str, int]) -> int:
    if isinstance(mode, int):
        return mode
    if mode not in _LOAD_MODES:
        raise InvalidArgumentError(f"load_mode {mode!r} is not one of {', '.join(_LOAD_MODES)}")
    return _LOAD_MODES[mode]


class Registry:
    """The context's model registry (ctx.models): models by name, loaded on use, kept for their
    keep-alive after, unloaded when idle, pressed or asked to."""

    def __init__(self, context: Context) -> None:
        self._context = weakref.proxy(context)

    def add(self, name: str, path: "Union[str, os.PathLike[str]]", *, keep_alive: KeepAlive = None,
            ctx: Optional[int] = None, pinned: bool = False, **params: Any) -> None:
        """Adds a model file under `name`, unloaded (the file is checked when first used).
        `keep_alive`: this model's own (None: the context's); `ctx`, n_batch, n_threads,
        n_gpu_layers, load_mode, type_k, type_v: its load parameters."""
        keep: List[Any] = []
        padded = model_params(ctx, params, keep)
        handle = self._context.handle
        check(lib().hr_registry_add(handle, encode(name), encode(path), byref(padded)))
        if keep_alive is not None:
            self.set_keep_alive(name, keep_alive)
        if pinned:
            self.pin(name, True)

    def load(self, name: str) -> None:
        """Loads `name` without using it; its keep-alive starts at once."""
        check(lib().hr_registry_load(self._context.handle, encode(name)))

    def unload(self, name: str, *, cancel: bool = False) -> None:
        """Unloads `name`. In use: BusyError, unless `cancel` (its generations are cancelled
        and it unloads when released)."""
        check(lib().hr_registry_unload(self._context.handle, encode(name), cancel))

    def pin(self, name: str, pinned: bool = True) -> None:
        """Pins `name` (never unloaded by keep-alive or pressure) or unpins it."""
        check(lib().hr_registry_pin(self._context.handle, encode(name), pinned))

    def set_keep_alive(self, name: str, keep_alive: KeepAlive) -> None:
        """Sets `name`'s keep-alive (None: back to the context's) and re-arms its deadline."""
        check(lib().hr_registry_set_keep_alive(self._context.handle, encode(name),
                                               keep_alive_seconds(keep_alive)))

    def list(self) -> List[RegistryEntry]:
        """A snapshot of the registry, least recently used first."""
        text = take_string(lib().hr_registry_json(self._context.handle))
        if text is None:
            raise error_for_code(-2, "hr_registry_json failed: " + (lib().hr_last_error() or b"").decode())
        return [_from_json(RegistryEntry, item) for item in json.loads(text)]

    def get(self, name: str) -> RegistryEntry:
        """The entry for `name`; NotFoundError when the registry has none."""
        for entry in self.list():
            if entry.name == name:
                return entry
        raise NotFoundError(f"no model named {name!r} in the registry")

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self.list())

    def __iter__(self) -> Iterator[RegistryEntry]:
        return iter(self.list())

    @contextmanager
    def acquire(self, name: str, *, keep_alive: KeepAlive = None) -> Iterator[Model]:
        """Uses `name` for the `with` block: loads it if needed (after a preflight; may raise
        MemoryRefusedError with guidance, or serve it through the fall-back), releases it at the
        end with `keep_alive` (None: the model's own)."""
        context = self._context
        handle = c_void_p()
        check(lib().hr_registry_acquire(context.handle, encode(name), byref(handle)))
        model = Model(context, handle.value, owned=False, name=name)
        try:
            yield model
        finally:
            model._release(keep_alive_seconds(keep_alive))

    def generate(self, name: str, prompt: str, *, keep_alive: KeepAlive = None, **params: Any) -> Stream:
        """Streams a generation on registry model `name`: acquires it (loading it if needed),
        and releases it with `keep_alive` when the stream ends or is left. Parameters as
        Model.generate."""
        context = self._context
        handle = c_void_p()
        check(lib().hr_registry_acquire(context.handle, encode(name), byref(handle)))
        model = Model(context, handle.value, owned=False, name=name)
        seconds = keep_alive_seconds(keep_alive)
        try:
            return model.generate(prompt, _on_close=lambda: model._release(seconds), **params)
        except BaseException:
            model._release(seconds)
            raise

    def complete(self, name: str, prompt: str, *, keep_alive: KeepAlive = None, **params: Any) -> str:
        """The whole text of a generation on registry model `name`."""
        with self.generate(name, prompt, keep_alive=keep_alive, **params) as stream:
            return "".join(stream)


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
            return [_copy(CacheEntry, array[i]) for i in range(count.value)]
        finally:
            if entries.value:
                lib().hr_free(entries)

    def status(self) -> CacheStatus:
        """The directory, budget and use."""
        status = s.filled(s.hr_cache_status)
        check(lib().hr_cache_get_status(self._context.handle, byref(status)))
        return _copy(CacheStatus, status)

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
        result = _copy(ClearReport, report, problems=problems)
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
