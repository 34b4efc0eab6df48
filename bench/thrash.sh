#!/usr/bin/env bash
# thrash.sh: the two silent-degradation cases of issue #4, on the 1b model (889 MB, Q8_0), each
# run twice in the same session: headroomd with its protections switched off
# (--pressure-actions off --guard off: what llama.cpp alone does) and headroomd as shipped.
#
#   case 1  the model is loaded, then its cgroup's limit drops below its size (700 MiB): the
#           kernel evicts the mapped weights and reads them back every token.
#   case 2  the model is served in a 1200 MiB cgroup; another program takes 600 MiB in it for
#           40 s; a client asks for a 16-token answer every 2 s throughout.
#
# Prints one line per request (when, HTTP status, seconds, tokens/s) and a summary per run.
# Needs root and a cgroup v1 memory controller. Takes about five minutes.
# usage: bench/thrash.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
source bench/common.sh
headroomd=$build/tools/headroomd/headroomd
model=$(cached_model "$build/tools/mkmodel/headroom-mkmodel" 1b q8_0)
llama_server=$(engine_tool llama-server)
scratch=$build/bench-thrash
rm -rf "$scratch"; mkdir -p "$scratch"
[[ $(id -u) -eq 0 ]] || { echo "thrash.sh: needs root for a child memory cgroup" >&2; exit 1; }
own=$(sed -n 's/^[0-9]*:[^:]*\bmemory\b[^:]*://p' /proc/self/cgroup | head -n 1)
[[ -n $own ]] || { echo "thrash.sh: no cgroup v1 memory controller" >&2; exit 1; }
[[ $own == / ]] && own=""
cgroup=/sys/fs/cgroup/memory$own/headroom-thrash-$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    [[ -d $cgroup ]] && rmdir "$cgroup" 2>/dev/null
}
trap cleanup EXIT
MiB=$((1024 * 1024))

# start NAME LIMIT_MIB SERVER: the server (headroomd or llama-server) inside a fresh cgroup with
# that limit, the model's pages dropped first so they are read and charged anew; sets url, pid
start() {
    local name=$1 limit=$2 kind=$3
    [[ -d $cgroup ]] && rmdir "$cgroup" 2>/dev/null
    mkdir "$cgroup" && echo $((limit * MiB)) >"$cgroup/memory.limit_in_bytes" || exit 1
    python3 -c "import os; fd=os.open('$model', os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)" 2>/dev/null
    local port=$(( 20000 + RANDOM % 20000 ))
    if [[ $kind == headroomd ]]; then
        (echo "$BASHPID" >"$cgroup/cgroup.procs" && exec "$headroomd" --model "$model" --port "$port" --ctx 512 \
            --threads 2 --keep-alive -1) >"$scratch/$name.out" 2>"$scratch/$name.err" &
    else
        (echo "$BASHPID" >"$cgroup/cgroup.procs" && exec "$llama_server" -m "$model" --port "$port" -c 512 -t 2 \
            --no-webui) >"$scratch/$name.out" 2>"$scratch/$name.err" &
    fi
    pid=$!; pids+=("$pid"); url=http://127.0.0.1:$port
    for _ in $(seq 1 600); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/health") == 200 ]] && return
        sleep 0.05
    done
    echo "$kind did not start: $(tail -3 "$scratch/$name.err")"; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null; rmdir "$cgroup" 2>/dev/null; }

# ask TOKENS: one request; prints "status seconds tokens/s [reason]"
t0=0
ask() {
    local started; started=$(date +%s.%N)
    curl -s -o "$scratch/body" -w '%{http_code}' --max-time 120 "$url/v1/completions" \
        -d "{\"model\":\"1b-q8_0-seed42\",\"prompt\":\"Once upon a time\",\"max_tokens\":$1,\"temperature\":0}" >"$scratch/status"
    local ended; ended=$(date +%s.%N)
    node -e '
        const [status, started, ended, t0, file] = process.argv.slice(1);
        let body = {}; try { body = JSON.parse(require("fs").readFileSync(file)); } catch {}
        const seconds = ended - started, tokens = body.usage ? body.usage.completion_tokens : 0;
        const why = body.error ? " " + body.error.message.slice(0, 110) : "";
        console.log(`  t=${(started - t0).toFixed(1).padStart(5)}s  HTTP ${status}  ${seconds.toFixed(2).padStart(6)} s  ` +
                    `${tokens ? (tokens / seconds).toFixed(1).padStart(5) : "    -"} tok/s${why}`);' \
        "$(cat "$scratch/status")" "$started" "$ended" "$t0" "$scratch/body"
}

case1() {   # case1 SERVER
    echo "case 1, $1: loaded in 2000 MiB, then the limit drops to 700 MiB"
    start c1 2000 "$1"
    t0=$(date +%s.%N)
    ask 32; ask 32
    echo $((700 * MiB)) >"$cgroup/memory.limit_in_bytes" || echo "  (the kernel could not shrink the cgroup)"
    echo "  -- limit now 700 MiB"
    for _ in 1 2 3; do ask 32; done
    grep -h "thrash\|cancelled\|unloaded [^/]" "$scratch/c1.err" | head -3 | cut -c1-200 | sed 's/^/  log: /'
    stop
}

case2() {   # case2 SERVER
    echo "case 2, $1: 1200 MiB cgroup, another program takes 600 MiB in it from t=10 s to t=56 s"
    start c2 1200 "$1"
    t0=$(date +%s.%N)
    ask 16
    (sleep 10; echo "$BASHPID" >"$cgroup/cgroup.procs"; exec perl -e 'my @held; for (1 .. 600) { push @held, "h" x 1048576; select(undef, undef, undef, 0.01) } sleep 40') &
    pids+=("$!")
    local end=$(( $(date +%s) + 66 ))
    while (( $(date +%s) < end )); do
        ask 16
        sleep 2
    done
    grep -h "unloaded [^/]\|thrash\|loaded in" "$scratch/c2.err" | head -4 | cut -c1-200 | sed 's/^/  log: /'
    kill -0 "$pid" 2>/dev/null || echo "  (headroomd is gone: killed)"
    echo "  oom kills in the cgroup: $(sed -n 's/^oom_kill //p' "$cgroup/memory.oom_control")"
    stop
}

case1 llama-server
case1 headroomd
case2 llama-server
case2 headroomd
