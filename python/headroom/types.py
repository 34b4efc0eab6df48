"""The values the API returns: plain dataclasses copied out of the library's structs, so they
stay valid after the call (and after the context is closed)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = [
    "Remote", "Pressure", "GpuStatus", "MemoryStatus", "Event", "DeviceEstimate", "Preflight",
    "ModelInfo", "GenerationStats", "GenerationRecord", "RegistryEntry", "CacheEntry",
    "CacheStatus", "CacheProblem", "ClearReport", "Embedding",
]


@dataclass
class Remote:
    """A remote OpenAI-compatible server (another headroomd, llama-server, vLLM, Ollama's /v1):
    the fall-back a context's registry sends a model to when it cannot be served here, or a
    model opened with Context.load_remote(). docs/fallback.md says what carries over."""
    url: str                        #: base URL, e.g. "http://127.0.0.1:11436" (no /v1)
    model: Optional[str] = None     #: the model to ask for; None: the registry name
    api_key: Optional[str] = None   #: sent as "Authorization: Bearer ..."
    connect_timeout: float = 0.0    #: seconds; 0: 5
    timeout: float = 0.0            #: seconds for a whole request; 0: none
    extended_sampling: Optional[bool] = None  #: also send top_k and min_p (library default: yes)


@dataclass
class Pressure:
    """The pressure level with its reasons (hr_pressure)."""
    level: str                      #: "normal", "warn" or "critical"
    free_percent: float             #: effective available memory as a share of its scope
    swap_used_bytes: int
    page_ins: int                   #: pages swapped in since boot
    page_outs: int
    page_ins_per_second: float
    page_outs_per_second: float
    stall_some_percent: float
    stall_full_percent: float
    stall_some_avg10: float
    effective_available_bytes: int  #: the least available over every scope that binds
    effective_total_bytes: int
    binding_scope: str              #: "host", "cgroup /app (memory.max)", ...
    reason: str
    detection: str                  #: how changes reach headroom on this host
    sampled_at: float               #: monotonic seconds


@dataclass
class GpuStatus:
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int


@dataclass
class MemoryStatus:
    """The watermark: the machine, the scope that binds this process, the process itself."""
    timestamp: float
    host_total_bytes: int
    host_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    effective_total_bytes: int
    effective_available_bytes: int
    binding_scope: str
    process_rss_bytes: int
    process_peak_rss_bytes: int
    process_file_rss_bytes: int
    process_major_faults: int
    gpu_telemetry: bool
    gpus: List[GpuStatus] = field(default_factory=list)


@dataclass
class Event:
    """An event from the library, delivered on the context's "headroom-events" Python thread.
    type: "pressure" (the level changed), "model" (loaded, unloaded, load_refused,
    load_failed), "action" (the lifecycle acted on its own), "degraded" (the guard)."""
    type: str
    timestamp: float
    level: str
    previous_level: str
    reason: str
    model: Optional[str]
    action: Optional[str]
    bytes_freed: int
    tokens_per_second: float
    expected_tokens_per_second: float
    faults_per_token: float


@dataclass
class DeviceEstimate:
    """One row of the preflight's per-device table (the host first, then each GPU)."""
    name: str
    is_gpu: bool
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int
    total_bytes: int
    available_bytes: int


@dataclass
class Preflight:
    """Will a model fit (hr_preflight_result): the verdict, what it rests on, the table."""
    verdict: str                    #: "ok", "warn" or "refuse"
    reason: str
    guidance: str                   #: what a person can do ("" when ok)
    devices: List[DeviceEstimate]
    total_bytes: int
    available_bytes: int
    missing_bytes: int
    binding_scope: str
    method: str                     #: "engine" (llama.cpp's dry run) or "formula"
    n_ctx: int
    max_ctx_that_fits: int
    min_total_bytes: int
    recommended_total_bytes: int
    min_free_bytes: int
    weight_bytes: int
    n_layer: int
    n_ctx_train: int

    @property
    def ok(self) -> bool:
        """True unless the verdict is "refuse"."""
        return self.verdict != "refuse"


@dataclass
class Embedding:
    """One text's embedding (hr_model_embed)."""
    vector: List[float]             #: n_embd floats, of length 1 when normalized
    n_tokens: int                   #: tokens embedded
    input_tokens: int               #: tokens the whole text makes (more when truncated)
    truncated: bool


@dataclass
class ModelInfo:
    description: str
    name: str
    n_params: int
    weight_bytes: int
    file_bytes: int
    n_layer: int
    n_ctx_train: int
    n_ctx: int
    n_vocab: int
    n_embd: int                     #: the width of its embeddings (Model.embed)
    n_layer_gpu: int
    n_threads: int
    load_mode: str
    remote: bool
    endpoint: str
    expected_tokens_per_second: float
    embed_bytes: int                #: process memory its embedding context added (0: none yet)
    slots: int                      #: requests it generates at once (continuous batching)


@dataclass
class GenerationStats:
    prompt_tokens: int
    generated_tokens: int
    prompt_seconds: float
    time_to_first_token: float
    decode_seconds: float
    total_seconds: float
    prompt_tokens_per_second: float
    tokens_per_second: float
    stop_reason: str                #: "none", "max_tokens", "end_of_text", "context_full", "cancelled", "stop_sequence"
    cached_tokens: int


@dataclass
class GenerationRecord:
    """One entry of the metrics ring (the last N generations, never sent anywhere)."""
    started_at: float
    model: str
    client: str
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token: float
    total_seconds: float
    tokens_per_second: float
    peak_rss_bytes: int
    pressure_level: Optional[str]
    cancelled: bool
    result: str                     #: "HR_OK" or the error's name
    served_by: str                  #: "local" or "fallback"
    extra: Dict[str, Any] = field(default_factory=dict)  #: fields a newer library added


@dataclass
class RegistryEntry:
    name: str
    path: str
    state: str                      #: "unloaded", "loading", "ready", "busy", "unloading"
    pinned: bool
    users: int
    keep_alive: float               #: seconds; negative: never
    loaded_at: float
    last_used_at: float
    expires_at: float               #: wall clock of the keep-alive deadline; 0: none
    weight_bytes: int
    n_ctx: int                      #: per slot
    served_by: str                  #: "local", "fallback", "" when unloaded
    rss_bytes: int                  #: process RSS the load added
    loads: int
    last_unload_reason: str
    slots: int = 0                  #: requests it generates at once, when loaded
    slots_reason: str = ""          #: why fewer than asked (the KV per slot, what was missing)
    running: int = 0                #: its sessions running now
    queued: int = 0                 #: its sessions waiting for a slot
    max_queued: int = 0             #: the limit of those waiting (negative: none)
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CacheEntry:
    path: str
    model: str
    bytes: int
    tokens: int
    created_at: float
    last_used_at: float
    n_ctx: int


@dataclass
class CacheStatus:
    directory: str
    budget_bytes: int
    used_bytes: int
    snapshots: int


@dataclass
class CacheProblem:
    """A file the cache clear could not remove."""
    path: str
    code: int
    error: str                      #: "HR_EACCES", "HR_EIO"
    sentence: str


@dataclass
class ClearReport:
    removed: int
    bytes_removed: int
    failed: int
    skipped: int                    #: entries left alone: not headroom's, links, saves in progress
    problems: List[CacheProblem] = field(default_factory=list)
