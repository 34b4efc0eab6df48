"""The context (hr_context) and what hangs off it: pressure and memory, events, preflight, the
model registry, the cache and the metrics ring.

Threads: the library calls back on its own threads (hr-monitor, hr-lifecycle, workers). Those
callbacks only put what they carry on a queue; a Python thread per context, "headroom-events",
delivers events to subscribers and log lines to the `headroom` logger, so no Python callback of
yours ever runs on a library thread or holds one up.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import weakref
from ctypes import byref, c_int, c_void_p
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _structs as s
from ._convert import KeepAlive, copy_struct, from_json, keep_alive_seconds, load_mode_value
from ._library import check, encode, lib, take_string
from .cache import Cache
from .errors import AgainError, InvalidArgumentError, error_for_code
from .generation import Model, Stream, model_params
from .registry import Registry
from .types import (DeviceEstimate, Event, GenerationRecord, GpuStatus, MemoryStatus, Preflight,
                    Pressure, Remote)

__all__ = ["Context", "Subscription"]

logger = logging.getLogger("headroom")
# A library's logger stays quiet until the application configures logging (then every automatic
# action shows, with its reason): logging.basicConfig(level=logging.INFO), or Context(log=...).
logger.addHandler(logging.NullHandler())

_LEVELS = ("normal", "warn", "critical")
_EVENT_TYPES = {1: "pressure", 2: "model", 3: "action", 4: "degraded"}
_LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "warning": 2, "error": 3}
_PY_LOG = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


def _level(value: int) -> str:
    return _LEVELS[value] if 0 <= value < len(_LEVELS) else str(value)


def _pressure(p: s.hr_pressure) -> Pressure:
    return copy_struct(Pressure, p, level=_level(p.level))


def _memory(m: s.hr_memory_status) -> MemoryStatus:
    gpus = [copy_struct(GpuStatus, m.gpus[i]) for i in range(min(max(m.n_gpus, 0), 8))]
    return copy_struct(MemoryStatus, m, gpus=gpus)


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
    devices = [copy_struct(DeviceEstimate, r.devices[i]) for i in range(min(r.n_devices, s.HR_MAX_DEVICES))]
    verdict = (lib().hr_verdict_name(r.verdict) or b"?").decode()
    return copy_struct(Preflight, r, verdict=verdict, devices=devices)


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
        unknown = set(types or ()) - set(_EVENT_TYPES.values())
        if unknown:
            raise InvalidArgumentError(f"unknown event type(s) {', '.join(sorted(unknown))}; the types are "
                                       + ", ".join(_EVENT_TYPES.values()))
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
        """Ends the subscription: no callback for it starts after this returns (one already
        running on the "headroom-events" thread finishes)."""
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
        return [from_json(GenerationRecord, item) for item in json.loads(self.metrics_json())]

    def metrics_json(self) -> str:
        """The metrics ring as the library's JSON array."""
        text = take_string(lib().hr_metrics_json(self.handle))
        if text is None:
            raise error_for_code(-2, "hr_metrics_json ran out of memory")
        return text
