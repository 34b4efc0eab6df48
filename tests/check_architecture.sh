#!/usr/bin/env bash
# check_architecture.sh: fails when an arrow that must never exist appears in the tree:
# llama.cpp's headers outside src/engine/ (tools/mkmodel, bench/, tests/ and scripts/engine_smoke.c,
# bootstrap's check of the engine alone before headroom is built, may use them),
# libcurl outside src/engine/, policy code reaching into probe/, runtime/, engine/ or platform/,
# core/ reaching up into any room above it, platform/ into any room at all, tools including
# library internals.
set -u
cd "$1" || exit 2
status=0
leaks=$(grep -rlE '#include *[<"](llama|ggml|gguf|ggml-backend)\.h[>"]' src tools include 2>/dev/null \
        | grep -vE '^(src/engine/|tools/mkmodel/)')
if [[ -n $leaks ]]; then echo "engine headers included outside src/engine/: $leaks"; status=1; fi
# libcurl is the remote engine's HTTP client, and only its.
curl=$(grep -rlE '#include *[<"]curl/curl\.h[>"]' src include 2>/dev/null | grep -vE '^src/engine/')
if [[ -n $curl ]]; then echo "curl/curl.h included outside src/engine/: $curl"; status=1; fi
if [[ -d src/policy ]]; then
    policy=$(grep -rlE '#include *"(probe|runtime|engine|platform)/' src/policy)
    if [[ -n $policy ]]; then echo "policy code includes probe/, runtime/, engine/ or platform/: $policy"; status=1; fi
fi
# core/ is the ground floor: errors, log, events, clocks, UTF-8, durations.
core=$(grep -rlE '#include *"(probe|policy|engine|runtime|platform)/' src/core 2>/dev/null)
if [[ -n $core ]]; then echo "core/ includes a room above it: $core"; status=1; fi
# platform/ wraps the operating system and knows nothing of headroom's rooms.
platform=$(grep -rlE '#include *"(core|probe|policy|engine|runtime)/' src/platform 2>/dev/null)
if [[ -n $platform ]]; then echo "platform/ includes a headroom room: $platform"; status=1; fi
# The calls that differ between Linux and macOS are made in platform/ only.
calls=$(grep -rlE '(pthread_setname_np|malloc_trim|pthread_condattr_setclock|posix_fadvise) *\(|<malloc\.h>' src \
        | grep -v '^src/platform/')
if [[ -n $calls ]]; then echo "platform calls outside src/platform/: $calls"; status=1; fi
internal=$(grep -rlE '#include *"(core|engine|runtime|probe|policy)/' tools 2>/dev/null)
if [[ -n $internal ]]; then echo "tools include library internals (use include/headroom.h): $internal"; status=1; fi
[[ $status -eq 0 ]] && echo "architecture: no forbidden includes"
exit $status
