#!/usr/bin/env bash
# check_architecture.sh: fails when an arrow that must never exist appears in the tree:
# llama.cpp's headers outside src/engine/ (tools/mkmodel, bench/ and tests/ may use them),
# libcurl outside src/engine/, policy code reaching into probe/, runtime/ or engine/, tools
# including library internals.
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
    policy=$(grep -rlE '#include *"(probe|runtime|engine)/' src/policy)
    if [[ -n $policy ]]; then echo "policy code includes probe/, runtime/ or engine/: $policy"; status=1; fi
fi
internal=$(grep -rlE '#include *"(core|engine|runtime|probe|policy)/' tools 2>/dev/null)
if [[ -n $internal ]]; then echo "tools include library internals (use include/headroom.h): $internal"; status=1; fi
[[ $status -eq 0 ]] && echo "architecture: no forbidden includes"
exit $status
