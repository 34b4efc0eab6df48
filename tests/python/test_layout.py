"""The ctypes layouts in python/headroom/_structs.py against include/headroom.h.

The header is parsed here (its structs are plain: scalars, fixed arrays, pointers, nested
structs) and each struct's C layout computed with this platform's sizes and alignments, then
compared field by field (name, order, offset) and in size with the ctypes twin. A field added
to the C API without its twin in _structs.py fails here. Then the library itself is asked: the
JSON it writes from a struct this package filled in or read must agree with what ctypes reads.
"""
from __future__ import annotations

import ctypes
import json
import math
import re
from typing import Dict, List, Tuple

import pytest

import headroom
from headroom import _structs as s
from headroom._library import lib, take_string

from conftest import SOURCE

HEADER = SOURCE / "include" / "headroom.h"

# C scalar types of the header -> the ctypes type that has the same size and alignment here
SCALARS = {
    "int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
    "size_t": ctypes.c_size_t, "double": ctypes.c_double, "float": ctypes.c_float, "bool": ctypes.c_bool,
    "char": ctypes.c_char,
}


def parse_header() -> Tuple[Dict[str, List[Tuple[str, str, int, bool]]], Dict[str, int]]:
    """struct name -> [(field, base type, array length, is pointer)], and the enum constants."""
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    constants = {name: int(value) for name, value in re.findall(r"\b(HR_[A-Z_]+)\s*=\s*(-?\d+)", text)}
    function_pointers = set(re.findall(r"typedef\s+[^;(]*\(\s*\*\s*(\w+)\s*\)", text))
    structs: Dict[str, List[Tuple[str, str, int, bool]]] = {}
    for name, body, alias in re.findall(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        assert name == alias, name
        fields = []
        for declaration in body.split(";"):
            declaration = " ".join(declaration.split())
            if not declaration:
                continue
            function_field = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", declaration)
            if function_field:   # a function pointer written in the struct: one pointer
                fields.append((function_field.group(1), "pointer", 1, True))
                continue
            match = re.match(r"((?:const\s+)?(?:enum\s+|struct\s+)?\w+)\s+(.*)", declaration)
            assert match, declaration
            base = re.sub(r"^const\s+", "", match.group(1))
            for declarator in match.group(2).split(","):
                declarator = declarator.strip()
                pointer = "*" in declarator
                parts = re.match(r"[\s*]*(?:const\s*\*?\s*)*(\w+)\s*(?:\[(\w+)\])?$", declarator)
                assert parts, declarator
                field, length = parts.group(1), parts.group(2)
                count = 1 if length is None else int(constants.get(length, length))
                fields.append((field, "pointer" if pointer or base in function_pointers else base, count, pointer))
        structs[name] = fields
    return structs, constants


STRUCTS, CONSTANTS = parse_header()


def c_layout(name: str) -> Tuple[List[Tuple[str, int]], int, int]:
    """[(field, offset)], size and alignment of struct `name` by the C rules."""
    offset, alignment, fields = 0, 1, []
    for field, base, count, _ in STRUCTS[name]:
        if base == "pointer":
            size = align = ctypes.sizeof(ctypes.c_void_p)
        elif base.startswith("enum "):
            size = align = ctypes.sizeof(ctypes.c_int)
        elif base in SCALARS:
            size = align = ctypes.sizeof(SCALARS[base])
        else:
            _, size, align = c_layout(base.replace("struct ", ""))
        offset = (offset + align - 1) // align * align
        fields.append((field, offset))
        offset += size * count
        alignment = max(alignment, align)
    return fields, (offset + alignment - 1) // alignment * alignment, alignment


def test_every_struct_of_the_header_has_its_twin_where_the_package_uses_it():
    assert STRUCTS, "no structs parsed from the header"
    missing = sorted(set(STRUCTS) - set(s.STRUCTS))
    assert not missing, f"structs in headroom.h without a ctypes twin in _structs.py: {missing}"


@pytest.mark.parametrize("name", sorted(s.STRUCTS))
def test_ctypes_layout_matches_the_header(name):
    assert name in STRUCTS, f"{name} is in _structs.py but not in headroom.h"
    fields, size, _ = c_layout(name)
    cls = s.STRUCTS[name]
    ours = [(field, getattr(cls, field).offset) for field, *_ in cls._fields_]
    assert ours == fields, f"{name}: ctypes fields/offsets {ours} differ from the header's {fields}"
    assert ctypes.sizeof(cls) == size, f"{name}: ctypes size {ctypes.sizeof(cls)}, header {size}"


def test_array_lengths_match_the_header():
    for name, fields in STRUCTS.items():
        cls = s.STRUCTS[name]
        for field, base, count, _ in fields:
            if count > 1:
                ctype = dict(cls._fields_)[field]
                assert getattr(ctype, "_length_", 1) == count, f"{name}.{field}: [{count}] in the header"
    assert CONSTANTS["HR_MAX_DEVICES"] == s.HR_MAX_DEVICES


def test_defaults_land_in_the_fields_the_header_documents():
    """A field shifted by a layout error would read another field's default."""
    c = lib().hr_context_default_params().base
    assert c.monitor is True and c.pressure_actions is True and c.guard is True
    assert c.keep_alive == 600 and c.metrics_capacity == 100 and c.critical_cancel_priority == 0
    assert c.thresholds.warn_free_percent == 15 and c.thresholds.critical_free_percent == 5
    assert c.thresholds.hold_seconds == 10 and c.cache_dir is None and c.cache_budget_bytes == 0
    assert c.fallback.url is None and c.fallback.extended_sampling is True
    g = lib().hr_generate_default_params().base
    assert (g.top_k, g.repeat_last_n, g.mirostat) == (40, 64, 0)
    assert math.isclose(g.temperature, 0.8, rel_tol=1e-6) and math.isclose(g.top_p, 0.95, rel_tol=1e-6)
    assert math.isclose(g.min_p, 0.05, rel_tol=1e-6) and g.typical_p == 1 and g.repeat_penalty == 1
    assert g.mirostat_tau == 5 and math.isclose(g.mirostat_eta, 0.1, rel_tol=1e-6)
    assert not g.stop and g.stop_count == 0 and not g.logit_bias
    session = lib().hr_session_default_params().base
    assert session.queue_capacity == 64 and session.reader_timeout == 0 and session.priority == 0
    assert session.generate.top_k == 40
    p = lib().hr_preflight_default_params().base
    assert p.n_gpu_layers == -1 and p.fallback is None
    r = lib().hr_remote_default_params().base
    assert r.extended_sampling is True and r.url is None


def test_the_library_reads_what_ctypes_wrote(tiny_model):
    """The library's JSON of structs that ctypes holds agrees with ctypes' reading of them."""
    with headroom.Context(monitor=False) as hr:
        p = s.filled(s.hr_pressure)
        assert lib().hr_pressure_check(hr.handle, ctypes.byref(p)) == 0
        j = json.loads(take_string(lib().hr_pressure_json(ctypes.byref(p))))
        assert j["level"] == ("normal", "warn", "critical")[p.level]
        assert j["binding_scope"] == p.binding_scope.decode() and j["reason"] == p.reason.decode()
        assert j["effective_available_bytes"] == p.effective_available_bytes and j["detection"] == p.detection.decode()
        assert j["page_outs"] == p.page_outs and j["swap_used"] == p.swap_used_bytes

        m = s.filled(s.hr_memory_status)
        assert lib().hr_memory_sample(hr.handle, ctypes.byref(m)) == 0
        j = json.loads(take_string(lib().hr_memory_status_json(ctypes.byref(m))))
        assert j["host_total_bytes"] == m.host_total_bytes and j["binding_scope"] == m.binding_scope.decode()
        assert j["process_major_faults"] == m.process_major_faults and len(j["gpus"]) == m.n_gpus

        result = hr.check(tiny_model, ctx=256)
        r = s.filled(s.hr_preflight_result)
        params = lib().hr_preflight_default_params()
        params.base.n_ctx = 256
        assert lib().hr_preflight(hr.handle, str(tiny_model).encode(), ctypes.byref(params), ctypes.byref(r)) == 0
        j = json.loads(take_string(lib().hr_preflight_json(ctypes.byref(r))))
        assert j["n_ctx"] == 256 == result.n_ctx and j["n_ctx_train"] == r.n_ctx_train == result.n_ctx_train
        assert j["weight_bytes"] == result.weight_bytes and j["guidance"] == result.guidance
        assert j["min_free_bytes"] == result.min_free_bytes and j["n_layer"] == result.n_layer
        assert [d["kv_bytes"] for d in j["devices"]] == [d.kv_bytes for d in result.devices]
        assert [d["overhead_bytes"] for d in j["devices"]] == [d.overhead_bytes for d in result.devices]

        # the registry's and the metrics' structs, through their own JSON
        hr.models.add("tiny", tiny_model, ctx=256, keep_alive=-1)
        hr.models.complete("tiny", "Hello", max_tokens=4, temperature=0)
        entries = ctypes.c_void_p()
        count = ctypes.c_size_t()
        lib().hr_registry_list.restype = ctypes.c_int
        lib().hr_registry_list.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
        assert lib().hr_registry_list(hr.handle, ctypes.byref(entries), ctypes.byref(count)) == 0
        e = ctypes.cast(entries, ctypes.POINTER(s.hr_registry_entry))[0]
        entry = hr.models.get("tiny")
        assert (e.name.decode(), e.n_ctx, e.loads, e.served_by.decode()) == (entry.name, entry.n_ctx, entry.loads, entry.served_by)
        assert e.weight_bytes == entry.weight_bytes and e.last_unload_reason.decode() == entry.last_unload_reason
        # the batching fields: ctypes reads what the JSON says (the slots of a loaded model)
        assert e.slots == entry.slots >= 1 and e.max_queued == entry.max_queued
        assert e.slots_reason.decode() == entry.slots_reason
        lib().hr_free(entries)
        lib().hr_metrics_records.restype = ctypes.c_int
        lib().hr_metrics_records.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        records = (s.hr_generation_record * 4)()
        assert lib().hr_metrics_records(hr.handle, records, 4) == 1
        record = hr.metrics()[0]
        assert records[0].model.decode() == record.model and records[0].generated_tokens == record.generated_tokens
        assert records[0].served_by.decode() == record.served_by and records[0].peak_rss_bytes == record.peak_rss_bytes
