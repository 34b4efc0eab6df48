"""Models and generation: a loaded model (hr_model) and a stream of pieces (hr_session).

A Stream is an iterator of text pieces, read from the session's bounded queue: a loop that stops
reading pauses generation (backpressure), and leaving the loop in any way (break, an exception,
the stream being garbage-collected, close(), the end of a `with` block) cancels the generation:
decoding stops within one step and the session's memory, and a registry model's use, are given
back.
"""
from __future__ import annotations

import ctypes
import threading
import weakref
from ctypes import byref, c_char_p, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

from . import _structs as s
from ._library import check, encode, lib, take_string
from .errors import InvalidArgumentError, error_for_code
from .types import Embedding, GenerationStats, ModelInfo

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Model", "Stream"]

_HR_OK, _HR_EAGAIN, _HR_EOF = 0, -12, -13
_STOP_REASONS = ("none", "max_tokens", "end_of_text", "context_full", "cancelled", "stop_sequence")
_LOAD_MODE_NAMES = ("auto", "mmap", "copy", "mlock")
_MODEL_PARAMS = ("n_batch", "n_threads", "n_gpu_layers", "load_mode", "type_k", "type_v", "slots", "max_queued")
_GENERATE_PARAMS = ("max_tokens", "temperature", "top_k", "top_p", "min_p", "seed", "typical_p",
                    "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty",
                    "mirostat", "mirostat_tau", "mirostat_eta")
_SESSION_PARAMS = ("queue_capacity", "reader_timeout", "priority")
READ_SLICE = 0.1   # seconds one read waits, so Ctrl-C and close() from another thread get in


def model_params(ctx: Optional[int], params: Dict[str, Any], keep: List[Any]) -> Any:
    """hr_model_params (padded) from the library's defaults and the given fields."""
    from ._convert import load_mode_value
    padded = lib().hr_model_default_params()
    p = padded.base
    unknown = set(params) - set(_MODEL_PARAMS)
    if unknown:
        raise TypeError(f"unknown model parameter(s): {', '.join(sorted(unknown))}; known: ctx, "
                        + ", ".join(_MODEL_PARAMS))
    if ctx is not None:
        p.n_ctx = ctx
    for name, value in params.items():
        if value is None:
            continue
        if name == "load_mode":
            p.load_mode = load_mode_value(value)
        elif name in ("type_k", "type_v"):
            keep.append(encode(value))
            setattr(p, name, keep[-1])
        else:
            setattr(p, name, value)
    return padded


def session_params(params: Dict[str, Any], keep: List[Any]) -> Any:
    """hr_session_params (padded) from the library's defaults and generate()'s keywords."""
    padded = lib().hr_session_default_params()
    p = padded.base
    g = p.generate
    for name, value in params.items():
        if value is None:
            continue
        if name in _GENERATE_PARAMS:
            setattr(g, name, value)
        elif name in _SESSION_PARAMS:
            setattr(p, name, value)
        elif name == "client":
            keep.append(encode(value))
            p.client = keep[-1]
        elif name == "stop":
            stops = [value] if isinstance(value, str) else list(value)
            array = (c_char_p * len(stops))(*[encode(x) for x in stops])
            keep.append(array)
            g.stop = ctypes.cast(array, ctypes.POINTER(c_char_p))
            g.stop_count = len(stops)
        elif name == "logit_bias":
            items = list(dict(value).items())
            array = (s.hr_logit_bias * len(items))(*[s.hr_logit_bias(int(t), float(b)) for t, b in items])
            keep.append(array)
            g.logit_bias = ctypes.cast(array, ctypes.POINTER(s.hr_logit_bias))
            g.logit_bias_count = len(items)
        else:
            raise TypeError(f"unknown generation parameter {name!r}; known: "
                            + ", ".join(_GENERATE_PARAMS + _SESSION_PARAMS + ("client", "stop", "logit_bias")))
    return padded


def _stats(st: s.hr_generation_stats) -> GenerationStats:
    values = {name: getattr(st, name) for name in GenerationStats.__dataclass_fields__}
    values["stop_reason"] = _STOP_REASONS[st.stop_reason] if 0 <= st.stop_reason < len(_STOP_REASONS) \
        else str(st.stop_reason)
    return GenerationStats(**values)


class Model:
    """A loaded model. From Context.load() or load_remote() you own it: close() it (or use
    `with`). From the registry (ctx.models.acquire) it is borrowed for the `with` block."""

    def __init__(self, context: "Context", handle: int, *, owned: bool, name: Optional[str] = None):
        self.context = context
        self._handle: Optional[int] = handle
        self._owned = owned
        self.name = name
        self._lock = threading.Lock()
        self._streams: "weakref.WeakSet[Stream]" = weakref.WeakSet()
        context._adopt(self)

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise InvalidArgumentError("the model is closed (or its registry use has ended)")
        return self._handle

    def info(self) -> ModelInfo:
        """Facts about the loaded model: sizes, layers, context window, threads, load mode."""
        info = s.filled(s.hr_model_info)
        check(lib().hr_model_get_info(self.handle, byref(info)))
        values: Dict[str, Any] = {}
        for name in ModelInfo.__dataclass_fields__:
            value = getattr(info, name)
            values[name] = s.text(value) if isinstance(value, bytes) else value
        values["load_mode"] = _LOAD_MODE_NAMES[info.load_mode] if 0 <= info.load_mode < 4 else str(info.load_mode)
        return ModelInfo(**values)

    def generate(self, prompt: str, *, max_tokens: int = 128, _on_close: Optional[Callable[[], None]] = None,
                 **params: Any) -> "Stream":
        """Starts a generation and returns its Stream, an iterator of text pieces.
        Parameters (None or absent: the library's default): max_tokens, temperature (0: greedy),
        top_k, top_p, min_p, seed, typical_p, repeat_penalty, repeat_last_n, presence_penalty,
        frequency_penalty, mirostat, mirostat_tau, mirostat_eta, stop (a str or a list),
        logit_bias ({token: bias}), queue_capacity, client, reader_timeout, priority."""
        keep: List[Any] = []
        padded = session_params(dict(params, max_tokens=max_tokens), keep)
        return Stream(self, prompt, padded, _on_close)

    def complete(self, prompt: str, **params: Any) -> str:
        """The whole text of a generation (generate() joined)."""
        with self.generate(prompt, **params) as stream:
            return "".join(stream)

    def apply_chat_template(self, messages: Sequence[Dict[str, str]], add_assistant: bool = True) -> str:
        """Formats [{"role": ..., "content": ...}, ...] with the model file's chat template;
        NotSupportedError when it has none llama.cpp recognises."""
        keep = [(encode(m["role"]), encode(m["content"])) for m in messages]
        array = (s.hr_chat_message * len(keep))(*[s.hr_chat_message(r, c) for r, c in keep])
        out = c_void_p()
        check(lib().hr_model_apply_chat_template(self.handle, array, len(keep), add_assistant, byref(out)))
        return take_string(out.value) or ""

    def embed(self, text: str, *, normalize: bool = True, truncate: bool = False) -> Embedding:
        """The embedding of `text` (plain text), pooled as the model declares, of length 1 when
        `normalize`. A text longer than the model takes is cut to its first tokens when
        `truncate`, else ContextFullError with the counts. Runs beside generations."""
        params = s.hr_embed_params(normalize, truncate)
        result = s.hr_embed_result()
        info = s.filled(s.hr_model_info)
        check(lib().hr_model_get_info(self.handle, byref(info)))
        width = info.n_embd
        vector = (ctypes.c_float * max(width, 1))()
        check(lib().hr_model_embed(self.handle, encode(text), byref(params), vector, width, byref(result)))
        return Embedding(list(vector[:width]), result.n_tokens, result.input_tokens, result.truncated)

    def cancel(self) -> None:
        """Stops the generation running on this model within one decode step (any thread)."""
        if self._handle is not None:
            lib().hr_model_cancel(self._handle)

    def snapshot_save(self) -> bool:
        """Saves the model's conversation (its window's tokens and KV state) into the cache;
        False when there was nothing new to save."""
        saved = ctypes.c_bool()
        check(lib().hr_model_snapshot_save(self.handle, byref(saved)))
        return saved.value

    def snapshot_restore(self) -> None:
        """Restores the newest snapshot made for this model file and window (NotFoundError when
        there is none)."""
        check(lib().hr_model_snapshot_restore(self.handle))

    def _release(self, keep_alive: float) -> None:
        """Ends a registry use (hr_registry_release) with a keep-alive in seconds (NaN: default)."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None and not self.context.closed:
            lib().hr_registry_release(self.context.handle, handle, keep_alive)

    def close(self) -> None:
        """Unloads an owned model and returns its memory (a borrowed one: ends its use). Streams
        still running on it are closed first (cancelled)."""
        for stream in list(self._streams):
            stream.close()
        if not self._owned:
            self._release(float("nan"))
            return
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            lib().hr_model_free(handle)

    def _close_for_context(self) -> None:
        if self._owned:
            self.close()
        else:   # the context frees registry models itself
            self._handle = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._owned and self._handle is not None and not self.context.closed:
                self.close()
        except Exception:
            pass


class Stream(Iterator[str]):
    """A generation in progress: iterate for its pieces (str, whole UTF-8 characters). Leaving
    the loop early cancels it; so do close(), the end of a `with` block and garbage collection.
    After the end, `stats` holds its statistics and `text` everything read."""

    def __init__(self, model: Model, prompt: str, padded_params: Any,
                 on_close: Optional[Callable[[], None]] = None) -> None:
        self.model = model
        self._on_close = on_close
        self._buffer = ctypes.create_string_buffer(4096)
        self._length = c_size_t()
        self._lock = threading.Lock()
        self._pieces: List[str] = []
        self.stats: Optional[GenerationStats] = None
        self.cancelled = False
        self.finished = False
        self._handle: Optional[int] = None
        handle = c_void_p()
        check(lib().hr_session_start(model.handle, encode(prompt), byref(padded_params), byref(handle)))
        self._handle = handle.value
        model._streams.add(self)
        model.context._adopt(self)

    @property
    def text(self) -> str:
        """Every piece read so far, joined."""
        return "".join(self._pieces)

    @property
    def generated_tokens(self) -> int:
        """Tokens generated so far: while it runs, the pieces queued for you (read or not); with a
        bounded queue this stops growing when you stop reading (backpressure)."""
        if self._handle is None:
            return self.stats.generated_tokens if self.stats else 0
        stats = s.filled(s.hr_generation_stats)
        check(lib().hr_session_stats(self._handle, byref(stats)))
        return stats.generated_tokens

    @property
    def queued(self) -> bool:
        """Whether the generation still waits for a slot of its model (every slot runs another)."""
        if self._handle is None:
            return False
        return bool(lib().hr_session_queued(self._handle))

    def __iter__(self) -> "Stream":
        return self

    def __next__(self) -> str:
        with self._lock:
            if self._handle is None:
                raise StopIteration
            while True:
                rc = lib().hr_session_read(self._handle, self._buffer, len(self._buffer), byref(self._length),
                                           READ_SLICE)
                if rc == _HR_EAGAIN:
                    continue   # back in Python: a KeyboardInterrupt lands here
                if rc == _HR_OK:
                    piece = self._buffer.raw[:self._length.value].decode("utf-8", "replace")
                    self._pieces.append(piece)
                    return piece
                if rc == _HR_EOF:
                    self.finished = True
                    self._finish()
                    raise StopIteration
                sentence = (lib().hr_last_error() or b"").decode("utf-8", "replace")
                self._finish()
                raise error_for_code(rc, sentence)

    def _finish(self) -> None:
        """Takes the final statistics, frees the session, ends a registry use. Lock held."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        stats = s.filled(s.hr_generation_stats)
        if lib().hr_session_stats(handle, byref(stats)) == _HR_OK:
            self.stats = _stats(stats)
        lib().hr_session_free(handle)
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def cancel(self) -> None:
        """Asks the generation to stop within one decode step; any thread. The loop then ends
        (the next read raises CancelledError)."""
        handle = self._handle
        if handle is not None:
            self.cancelled = True
            lib().hr_session_cancel(handle)

    def close(self) -> None:
        """Cancels the generation if it still runs and gives everything back: the session, its
        queue, and (for a registry model) the model's use, with the stream's keep-alive."""
        if self._handle is not None and not self.finished:
            self.cancel()
        with self._lock:
            self._finish()

    def _close_for_context(self) -> None:
        self.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._handle is not None and not self.model.context.closed:
                self.close()
        except Exception:
            pass
