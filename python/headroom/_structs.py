"""The ctypes layouts of include/headroom.h's structs: every layout this package relies on is
here and nowhere else.

They must match the header field for field. tests/python/test_layout.py parses the header and
checks each struct below (names, order, offsets, size) against it, so a field added to the C
API without its twin here fails the test suite. Against a library of another version the risk
remains; the header's rule (new fields only at the end) is what makes two defences work:
structs the library fills in are given ``SLACK`` spare bytes (``filled()``), and parameter
structs are always started from the library's own ``hr_*_default_params()`` in a padded buffer,
so a field this package does not know keeps the library's default.
"""
from __future__ import annotations

import ctypes
from ctypes import (POINTER, Structure, c_bool, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_size_t, c_uint64, c_void_p)
from typing import Dict, Type, TypeVar

# enums are ints in the C ABI on every platform headroom builds for
c_enum = c_int

SLACK = 1024   # spare bytes after a struct the library writes (fields appended in later versions)

LOG_FN = ctypes.CFUNCTYPE(None, c_enum, c_char_p, c_void_p)
PROGRESS_FN = ctypes.CFUNCTYPE(c_bool, c_float, c_void_p)
PIECE_FN = ctypes.CFUNCTYPE(c_int, POINTER(c_char), c_size_t, c_void_p)
CACHE_PROBLEM_FN = ctypes.CFUNCTYPE(None, c_char_p, c_int, c_char_p, c_void_p)


class hr_pressure_thresholds(Structure):
    _fields_ = [
        ("warn_free_percent", c_double),
        ("critical_free_percent", c_double),
        ("free_margin_percent", c_double),
        ("warn_stall_some_percent", c_double),
        ("critical_stall_some_percent", c_double),
        ("critical_stall_full_percent", c_double),
        ("stall_margin_ratio", c_double),
        ("warn_swap_in_per_second", c_double),
        ("critical_swap_per_second", c_double),
        ("hold_seconds", c_double),
    ]


class hr_remote_params(Structure):
    _fields_ = [
        ("url", c_char_p),
        ("model", c_char_p),
        ("api_key", c_char_p),
        ("connect_timeout", c_double),
        ("timeout", c_double),
        ("extended_sampling", c_bool),
    ]


class hr_context_params(Structure):
    _fields_ = [
        ("log_fn", LOG_FN),
        ("log_user_data", c_void_p),
        ("log_level", c_enum),
        ("monitor", c_bool),
        ("thresholds", hr_pressure_thresholds),
        ("sample_interval_min", c_double),
        ("sample_interval_max", c_double),
        ("metrics_capacity", c_int32),
        ("keep_alive", c_double),
        ("pressure_actions", c_bool),
        ("critical_cancel_priority", c_int32),
        ("guard", c_bool),
        ("cache_dir", c_char_p),
        ("cache_budget_bytes", c_uint64),
        ("fallback", hr_remote_params),
    ]


class hr_gpu_status(Structure):
    _fields_ = [
        ("name", c_char * 96),
        ("total_bytes", c_uint64),
        ("used_bytes", c_uint64),
        ("free_bytes", c_uint64),
    ]


class hr_memory_status(Structure):
    _fields_ = [
        ("timestamp", c_double),
        ("host_total_bytes", c_uint64),
        ("host_available_bytes", c_uint64),
        ("swap_total_bytes", c_uint64),
        ("swap_used_bytes", c_uint64),
        ("effective_total_bytes", c_uint64),
        ("effective_available_bytes", c_uint64),
        ("binding_scope", c_char * 256),
        ("process_rss_bytes", c_uint64),
        ("process_peak_rss_bytes", c_uint64),
        ("process_file_rss_bytes", c_uint64),
        ("process_major_faults", c_uint64),
        ("gpu_telemetry", c_bool),
        ("n_gpus", c_int),
        ("gpus", hr_gpu_status * 8),
    ]


class hr_pressure(Structure):
    _fields_ = [
        ("level", c_enum),
        ("free_percent", c_double),
        ("swap_used_bytes", c_uint64),
        ("page_ins", c_uint64),
        ("page_outs", c_uint64),
        ("page_ins_per_second", c_double),
        ("page_outs_per_second", c_double),
        ("stall_some_percent", c_double),
        ("stall_full_percent", c_double),
        ("stall_some_avg10", c_double),
        ("effective_available_bytes", c_uint64),
        ("effective_total_bytes", c_uint64),
        ("binding_scope", c_char * 256),
        ("reason", c_char * 512),
        ("detection", c_char * 256),
        ("sampled_at", c_double),
    ]


class hr_event(Structure):
    _fields_ = [
        ("type", c_enum),
        ("timestamp", c_double),
        ("level", c_enum),
        ("previous_level", c_enum),
        ("reason", c_char_p),
        ("model", c_char_p),
        ("action", c_char_p),
        ("bytes_freed", c_int64),
        ("tokens_per_second", c_double),
        ("expected_tokens_per_second", c_double),
        ("faults_per_token", c_double),
    ]


EVENT_FN = ctypes.CFUNCTYPE(None, POINTER(hr_event), c_void_p)


class hr_model_params(Structure):
    _fields_ = [
        ("n_ctx", c_int32),
        ("n_batch", c_int32),
        ("n_threads", c_int32),
        ("n_gpu_layers", c_int32),
        ("load_mode", c_enum),
        ("progress_fn", PROGRESS_FN),
        ("progress_user_data", c_void_p),
        ("type_k", c_char_p),
        ("type_v", c_char_p),
        ("max_queued", c_int32),
        ("slots", c_int32),
    ]


class hr_model_info(Structure):
    _fields_ = [
        ("description", c_char * 128),
        ("name", c_char * 128),
        ("n_params", c_uint64),
        ("weight_bytes", c_uint64),
        ("file_bytes", c_uint64),
        ("n_layer", c_int32),
        ("n_ctx_train", c_int32),
        ("n_ctx", c_int32),
        ("n_vocab", c_int32),
        ("n_embd", c_int32),
        ("n_layer_gpu", c_int32),
        ("n_threads", c_int32),
        ("load_mode", c_enum),
        ("remote", c_bool),
        ("endpoint", c_char * 256),
        ("expected_tokens_per_second", c_double),
        ("embed_bytes", c_uint64),
        ("slots", c_int32),
    ]


class hr_embed_params(Structure):
    _fields_ = [("normalize", c_bool), ("truncate", c_bool)]


class hr_embed_result(Structure):
    _fields_ = [("n_tokens", c_int32), ("input_tokens", c_int32), ("truncated", c_bool)]


class hr_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class hr_chat_params(Structure):
    """A conversation with tools, for hr_chat_create (JSON text in; enum hr_tool_choice as int)."""
    _fields_ = [
        ("messages_json", c_char_p),
        ("tools_json", c_char_p),
        ("tool_choice", c_int),
        ("tool_name", c_char_p),
        ("parallel_tool_calls", c_bool),
    ]


class hr_preflight_params(Structure):
    _fields_ = [
        ("n_ctx", c_int32),
        ("slots", c_int32),
        ("n_batch", c_int32),
        ("n_gpu_layers", c_int32),
        ("load_mode", c_enum),
        ("type_k", c_char_p),
        ("type_v", c_char_p),
        ("min_total_bytes", c_uint64),
        ("recommended_total_bytes", c_uint64),
        ("min_free_bytes", c_uint64),
        ("fallback", c_char_p),
    ]


class hr_device_estimate(Structure):
    _fields_ = [
        ("name", c_char * 64),
        ("is_gpu", c_bool),
        ("weights_bytes", c_uint64),
        ("kv_bytes", c_uint64),
        ("compute_bytes", c_uint64),
        ("total_bytes", c_uint64),
        ("available_bytes", c_uint64),
        ("overhead_bytes", c_uint64),
    ]


HR_MAX_DEVICES = 8


class hr_preflight_result(Structure):
    _fields_ = [
        ("verdict", c_enum),
        ("total_bytes", c_uint64),
        ("available_bytes", c_uint64),
        ("missing_bytes", c_uint64),
        ("binding_scope", c_char * 64),
        ("method", c_char * 16),
        ("n_ctx", c_int32),
        ("slots", c_int32),
        ("max_ctx_that_fits", c_int32),
        ("n_devices", c_size_t),
        ("devices", hr_device_estimate * HR_MAX_DEVICES),
        ("reason", c_char * 256),
        ("guidance", c_char * 1024),
        ("min_total_bytes", c_uint64),
        ("recommended_total_bytes", c_uint64),
        ("min_free_bytes", c_uint64),
        ("weight_bytes", c_uint64),
        ("n_layer", c_int32),
        ("n_ctx_train", c_int32),
        ("file_cached_bytes", c_uint64),
    ]


class hr_logit_bias(Structure):
    _fields_ = [("token", c_int32), ("bias", c_float)]


class hr_generate_params(Structure):
    _fields_ = [
        ("max_tokens", c_int32),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("seed", c_uint64),
        ("typical_p", c_float),
        ("repeat_penalty", c_float),
        ("repeat_last_n", c_int32),
        ("presence_penalty", c_float),
        ("frequency_penalty", c_float),
        ("mirostat", c_int32),
        ("mirostat_tau", c_float),
        ("mirostat_eta", c_float),
        ("logit_bias", POINTER(hr_logit_bias)),
        ("logit_bias_count", c_size_t),
        ("stop", POINTER(c_char_p)),
        ("stop_count", c_size_t),
        # conversations, grammars and logprobs: not offered by the package yet, kept at their
        # defaults (NULL, 0, false) so the layout matches the header
        ("messages", c_void_p),
        ("message_count", c_size_t),
        ("prompt_special", c_bool),
        ("grammar", c_char_p),
        ("logprobs", c_bool),
        ("top_logprobs", c_int32),
        ("logprob_fn", c_void_p),
        ("logprob_user_data", c_void_p),
        ("chat", c_void_p),   # const hr_chat *: a conversation rendered with tools
    ]


HR_MAX_TOP_LOGPROBS = 20
HR_MAX_PIECE_BYTES = 48


class hr_logprob(Structure):
    _fields_ = [
        ("token", c_int32),
        ("logprob", c_float),
        ("length", c_int32),
        ("piece", c_char * HR_MAX_PIECE_BYTES),
    ]


class hr_token_logprobs(Structure):
    _fields_ = [
        ("chosen", hr_logprob),
        ("top_count", c_int32),
        ("top", hr_logprob * HR_MAX_TOP_LOGPROBS),
    ]


class hr_generation_stats(Structure):
    _fields_ = [
        ("prompt_tokens", c_int32),
        ("generated_tokens", c_int32),
        ("prompt_seconds", c_double),
        ("time_to_first_token", c_double),
        ("decode_seconds", c_double),
        ("total_seconds", c_double),
        ("prompt_tokens_per_second", c_double),
        ("tokens_per_second", c_double),
        ("stop_reason", c_enum),
        ("cached_tokens", c_int32),
    ]


class hr_session_params(Structure):
    _fields_ = [
        ("generate", hr_generate_params),
        ("queue_capacity", c_int32),
        ("client", c_char_p),
        ("reader_timeout", c_double),
        ("priority", c_int32),
    ]


class hr_admission(Structure):
    _fields_ = [
        ("slots", c_int32),
        ("running", c_int32),
        ("queued", c_int32),
        ("max_queued", c_int32),
        ("retry_after", c_double),
    ]


class hr_registry_entry(Structure):
    _fields_ = [
        ("name", c_char * 128),
        ("path", c_char * 1024),
        ("state", c_enum),
        ("pinned", c_bool),
        ("users", c_int32),
        ("keep_alive", c_double),
        ("loaded_at", c_double),
        ("last_used_at", c_double),
        ("expires_at", c_double),
        ("weight_bytes", c_uint64),
        ("n_ctx", c_int32),
        ("slots", c_int32),
        ("slots_reason", c_char * 320),
        ("served_by", c_char * 16),
        ("running_sessions", c_int32),
        ("queued_sessions", c_int32),
        ("max_queued", c_int32),
        ("rss_bytes", c_uint64),
        ("loads", c_int32),
        ("last_unload_reason", c_char * 160),
    ]


class hr_cache_entry(Structure):
    _fields_ = [
        ("path", c_char * 512),
        ("model", c_char * 128),
        ("bytes", c_uint64),
        ("tokens", c_int32),
        ("created_at", c_double),
        ("last_used_at", c_double),
        ("n_ctx", c_int32),
    ]


class hr_cache_status(Structure):
    _fields_ = [
        ("directory", c_char * 1024),
        ("budget_bytes", c_uint64),
        ("used_bytes", c_uint64),
        ("snapshots", c_size_t),
    ]


class hr_cache_clear_report(Structure):
    _fields_ = [
        ("removed", c_size_t),
        ("bytes_removed", c_uint64),
        ("failed", c_size_t),
        ("skipped", c_size_t),
    ]


class hr_generation_record(Structure):
    _fields_ = [
        ("started_at", c_double),
        ("model", c_char * 128),
        ("client", c_char * 64),
        ("prompt_tokens", c_int32),
        ("generated_tokens", c_int32),
        ("time_to_first_token", c_double),
        ("total_seconds", c_double),
        ("tokens_per_second", c_double),
        ("peak_rss_bytes", c_uint64),
        ("pressure_level", c_enum),
        ("pressure_known", c_bool),
        ("cancelled", c_bool),
        ("result", c_int),
        ("served_by", c_char * 16),
    ]


# Every struct above by its C name: what the layout test walks.
STRUCTS: Dict[str, Type[Structure]] = {
    name: cls for name, cls in globals().items()
    if isinstance(cls, type) and issubclass(cls, Structure) and name.startswith("hr_")
}

T = TypeVar("T", bound=Structure)
_padded_types: Dict[type, type] = {}


def padded(cls: Type[T]) -> type:
    """A struct type of `cls` followed by SLACK spare bytes: the return type for
    hr_*_default_params(), whose C struct may have grown fields this package does not know
    (a struct this large is returned through memory the caller provides, so the spare bytes
    take them). ``.base`` is the known part."""
    if cls not in _padded_types:
        _padded_types[cls] = type(f"padded_{cls.__name__}", (Structure,),
                                  {"_fields_": [("base", cls), ("_slack", c_char * SLACK)]})
    return _padded_types[cls]


def filled(cls: Type[T]) -> T:
    """A zeroed `cls` with SLACK spare bytes behind it, for the library to write into."""
    buffer = ctypes.create_string_buffer(ctypes.sizeof(cls) + SLACK)
    instance = cls.from_buffer(buffer)
    instance._buffer = buffer   # type: ignore[attr-defined]  # keeps the memory alive
    return instance


def text(value: bytes) -> str:
    """A fixed char array's bytes as str (UTF-8; bad bytes replaced)."""
    return value.decode("utf-8", "replace")
