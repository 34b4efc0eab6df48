# lib.sh: what the e2e scripts share: checks printed as "ok - ..." lines, HTTP requests whose
# status, headers and body land in files, and headroomd started on a free port and always
# stopped. Sourced after the caller sets `headroomd` and `scratch`; it owns no test of its own.
# shellcheck shell=bash disable=SC2154

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
passed=0 failed=0
server_pids=() helper_pids=()

# check NAME EXIT-CODE: one "ok"/"not ok" line; a failure shows the last reply. A NAME holding a
# command substitution runs it before `$?` is expanded, so `check "... $(cat f)" $?` always passes:
# save the status first (`verdict=$?; check "... $(cat f)" $verdict`).
check() {
    if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); echo "ok - $1"
    else
        failed=$((failed + 1)); echo "not ok - $1"
        [[ -f $scratch/status ]] && echo "  last reply: HTTP $(cat "$scratch/status"): $(head -c 400 "$scratch/body" | tr '\n\0' '  ')"
    fi
    return 0
}

finish() {
    echo "$passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

# http METHOD URL [BODY] [CURL-ARGS...]: BODY is JSON text or @FILE (anything not starting with
# '-'); the reply lands in $scratch/body, $scratch/headers and $scratch/status ("000" when
# nothing came back).
http() {
    local method=$1 url=$2; shift 2
    local args=(-s -X "$method" -o "$scratch/body" -D "$scratch/headers" -w '%{http_code}' --max-time 60)
    if [[ $# -gt 0 && $1 != -* ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$1"); shift; fi
    : >"$scratch/body"
    curl "${args[@]}" "$@" "$url" >"$scratch/status" 2>/dev/null || true
    [[ -s $scratch/status ]] || echo 000 >"$scratch/status"
}
status() { [[ $(cat "$scratch/status") == "$1" ]]; }
expect() { node "$e2e_dir/expect.mjs" "$scratch/body" "$1"; }
header() { tr -d '\r' <"$scratch/headers" | grep -qi "^$1"; }   # header 'Name: value-prefix'

# start_server NAME HEADROOMD-ARGS...: starts headroomd on a free port (add --port 0) and waits
# for its first line; sets `url` and `pid`, or returns 1 with the reason in $scratch/NAME.err.
start_server() {
    local name=$1; shift
    : >"$scratch/$name.out"
    "$headroomd" "$@" >"$scratch/$name.out" 2>"$scratch/$name.err" &
    pid=$!
    server_pids+=("$pid")
    url=""
    local port=""
    for _ in $(seq 1 300); do   # 15 s: a sanitizer build starts slowly
        port=$(sed -n 's|^headroomd: listening on http://.*:\([0-9][0-9]*\) (.*|\1|p' "$scratch/$name.out")
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $port ]] || return 1
    url=http://127.0.0.1:$port
}

# stop_server PID NAME: SIGTERM, then its exit status; 0 only for a clean stop with no
# sanitizer report in its stderr (leaks make a sanitizer build exit non-zero too).
stop_server() {
    local pid=$1 name=$2 code
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && { echo "  $name did not stop within 10 s of SIGTERM"; kill -KILL "$pid"; }
    wait "$pid"; code=$?
    if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$scratch/$name.err"; then
        echo "  $name's sanitizer report:"; sed 's/^/    /' "$scratch/$name.err" | head -40
        return 1
    fi
    [[ $code -eq 0 ]] || { echo "  $name exited with $code; its stderr:"; sed 's/^/    /' "$scratch/$name.err" | tail -20; }
    return "$code"
}

# Every process this script started stops with it, passed or failed.
cleanup() {
    for p in "${helper_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in "${server_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${server_pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
}
trap cleanup EXIT

# active_tokens URL: generated_tokens of the first running generation, or "none".
active_tokens() {
    local reply
    reply=$(curl -s --max-time 5 "$1/api/active")
    [[ $reply == "[]" ]] && { echo none; return; }
    sed -n 's/^\[{"generated_tokens":\([0-9]*\).*/\1/p' <<<"$reply"
}

# eventually SECONDS COMMAND...: retries COMMAND quietly until it succeeds; the last try speaks.
eventually() {
    local tries=$(( $1 * 20 )); shift
    for _ in $(seq 2 "$tries"); do "$@" 2>/dev/null && return 0; sleep 0.05; done
    "$@"
}

# last_record URL CONDITION: CONDITION holds for GET /api/generations' body.
last_record() { http GET "$1/api/generations"; expect "$2"; }

# wait_idle URL SECONDS: waits until no generation runs; 1 if one still does.
wait_idle() {
    local tries=$(( $2 * 20 ))
    for _ in $(seq 1 "$tries"); do [[ $(active_tokens "$1") == none ]] && return 0; sleep 0.05; done
    return 1
}

# limited_cgroup NAME MIB: a child cgroup v1 memory cgroup NAME-PID limited to MIB MiB, its path
# in `cgroup`, removed (after every process of the script has stopped) at exit. Exits 77 with the
# reason where none can be made: not root, no v1 memory controller, no right to create or limit.
cgroup=""
remove_cgroup() {
    cleanup
    if [[ -n $cgroup && -d $cgroup ]]; then
        for _ in $(seq 1 50); do rmdir "$cgroup" 2>/dev/null && break; sleep 0.1; done
    fi
}
limited_cgroup() {
    local own error
    [[ $(id -u) -eq 0 ]] || { echo "skipped: not root: cannot create a child memory cgroup"; exit 77; }
    own=$(sed -n 's/^[0-9]*:[^:]*\bmemory\b[^:]*://p' /proc/self/cgroup | head -n 1)
    [[ -n $own ]] || { echo "skipped: no cgroup v1 memory controller in /proc/self/cgroup"; exit 77; }
    [[ $own == / ]] && own=""
    cgroup=/sys/fs/cgroup/memory$own/$1-$$
    error=$(mkdir "$cgroup" 2>&1) || { echo "skipped: cannot create a child memory cgroup: ${error#mkdir: }"; cgroup=""; exit 77; }
    trap remove_cgroup EXIT
    error=$( (echo $(($2 * 1024 * 1024)) >"$cgroup/memory.limit_in_bytes") 2>&1) \
        || { echo "skipped: cannot set a memory limit on $cgroup: ${error##*: }"; exit 77; }
}
