# common.sh: what the bench/ scripts share, sourced after `cd` to the repository root:
# the engine's tools (built once by scripts/bootstrap --tools) and the cached generated model.

# engine_tool NAME: prints the path of llama.cpp's NAME (llama-bench, llama-server) or exits.
engine_tool() {
    local engine_dir
    engine_dir=$(dirname "$(scripts/bootstrap --tools)") || exit 1   # builds the tools once
    [[ -x $engine_dir/tools/$1 ]] || { echo "bench: $1 not found in $engine_dir/tools" >&2; exit 1; }
    echo "$engine_dir/tools/$1"
}

# cached_model MKMODEL PRESET TYPE: prints the path of the generated model, made once (seed 42)
# in ${XDG_CACHE_HOME:-~/.cache}/headroom/models.
cached_model() {
    local models=${XDG_CACHE_HOME:-$HOME/.cache}/headroom/models
    local model=$models/$2-$3-seed42.gguf
    mkdir -p "$models"
    if [[ ! -f $model ]]; then
        echo "bench: generating $model (once)" >&2
        "$1" --preset "$2" --type "$3" --seed 42 -o "$model" >&2 || exit 1
    fi
    echo "$model"
}

# stop_pid PID: TERM, then KILL after 3 s.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# free_port: a TCP port free on loopback now.
free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

# headroomd_port PID OUT ERR: waits (60 s at most) for the headroomd PID to say where it listens
# in its stdout file OUT and prints the port; exits with its stderr ERR when it dies first.
headroomd_port() {
    local port=''
    for _ in $(seq 600); do
        kill -0 "$1" 2>/dev/null || { echo "bench: headroomd exited:" >&2; cat "$3" >&2; exit 1; }
        port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$2" | head -n 1)
        [[ -n $port ]] && { echo "$port"; return; }
        sleep 0.1
    done
    echo "bench: headroomd did not start" >&2
    exit 1
}

# wait_llama_server PID PORT ERR: waits (60 s at most) for llama-server's /health to answer 200.
wait_llama_server() {
    for _ in $(seq 600); do
        kill -0 "$1" 2>/dev/null || { echo "bench: llama-server exited:" >&2; tail "$3" >&2; exit 1; }
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health") == 200 ]] && return
        sleep 0.1
    done
}
