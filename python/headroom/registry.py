"""The model registry of a context (ctx.models): models by name, loaded on use, kept for their
keep-alive, unloaded when idle, pressed or asked to (docs/lifecycle.md)."""
from __future__ import annotations

import json
import os
import weakref
from contextlib import contextmanager
from ctypes import byref, c_void_p
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Union

from ._convert import KeepAlive, from_json, keep_alive_seconds
from ._library import check, encode, lib, take_string
from .errors import NotFoundError, error_for_code
from .generation import Model, Stream, model_params
from .types import RegistryEntry

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Registry"]


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
        return [from_json(RegistryEntry, item) for item in json.loads(text)]

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
