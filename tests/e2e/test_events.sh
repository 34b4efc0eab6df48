#!/usr/bin/env bash
# test_events.sh: the shapes of /api/events' `dropped` and `degraded` events, end to end.
# dropped: a subscriber that stops reading (slow_events.pl: small socket buffers) while loads and
# unloads make hundreds of model events; when it reads again it is first told how many it
# missed (`event: dropped`, data {dropped, reason, time}), then gets the newest events, whole;
# a subscriber that keeps reading (curl -N) meanwhile gets every event and no `dropped`.
# degraded: the 158 MiB model in a child memory cgroup whose limit then tightens below its size
# (as integration.guard_live does), so its mapped weights are evicted every token; the guard's
# `event: degraded` carries model, level, tokens_per_second, expected_tokens_per_second,
# faults_per_token, reason and time. That part exits 77 without root or a v1 memory cgroup.
# Under a sanitizer (SANITIZED = "sanitized") it exits 77: a load/unload pair takes 0.6 s there, so
# overflowing the stalled socket's buffers took over 5 minutes, and the sanitizer's fresh pages
# read to the guard as evicted weights (the reason e2e.headroomd runs with the guard off there).
# usage: test_events.sh HEADROOMD TINY_MODEL MID_MODEL SCRATCH_DIR [SANITIZED]
set -u
headroomd=$1 model=$2 mid=$3 scratch=$4
[[ ${5:-} == sanitized ]] && { echo "skipped: under a sanitizer the event flood takes over 5 minutes and the guard misreads its pages"; exit 77; }
rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "skipped: node is not installed (the JSON checks use it)"; exit 77; }
command -v perl >/dev/null || { echo "skipped: perl is not installed (the slow subscriber)"; exit 77; }

# ---- dropped ----
start_server a --model "$model" --port 0 --threads 1 --ctx 256 --keep-alive never
a_url=$url a_pid=$pid
[[ -n $a_url ]]; check "headroomd listens" $?
coproc slow { perl "$e2e_dir/slow_events.pl" "${a_url##*:}" "$scratch/resume" "$scratch/slow.sse"; }
helper_pids+=("$slow_PID")
read -r -t 20 line <&"${slow[0]}"
[[ $line == subscribed\ * ]]; check "the slow subscriber is subscribed" $?
slow_port=${line#subscribed }
curl -sN --max-time 600 "$a_url/api/events" -o "$scratch/fast.sse" &
fast=$!
helper_pids+=("$fast")
sleep 0.5
# How much the kernel buffers for the stalled socket varies (tens to a hundred KiB), so events are
# made until the server's send queue to it stops growing, then 150 load/unload pairs (300 events)
# more than the server's 64-event queue holds.
send_queue() { ss -tnH state established "( sport = :${a_url##*:} and dport = :$slow_port )" | awk '{print $2}'; }
cycles=0 previous=-1 full_at=0
cycle() {
    curl -s -o /dev/null -X POST -d '{"model":"tiny"}' "$a_url/api/load"
    curl -s -o /dev/null -X POST -d '{"model":"tiny"}' "$a_url/api/unload"
    cycles=$((cycles + 1))
}
while [[ $full_at -eq 0 && $cycles -lt 2000 ]]; do
    for _ in $(seq 1 20); do cycle; done
    queued=$(send_queue)
    [[ -n $queued && $queued -gt 0 && $queued -eq $previous ]] && full_at=$cycles
    previous=${queued:-0}
done
for _ in $(seq 1 150); do cycle; done
echo "  the stalled socket's buffers were full after $full_at load/unload pairs ($previous bytes queued); $cycles in all"
sleep 1
touch "$scratch/resume"
read -r -t 30 line <&"${slow[0]}"
echo "  slow subscriber: $line"
kill "$fast" 2>/dev/null; wait "$fast" 2>/dev/null

node -e '
const fs = require("fs");
// SSE: blocks separated by a blank line; each "event: NAME" then "data: JSON"
const events = text => text.split("\n\n").map(block => {
    const name = /^event: (.*)$/m.exec(block), data = /^data: (.*)$/m.exec(block);
    return name && data ? { name: name[1], data: JSON.parse(data[1]) } : null;
}).filter(Boolean);
const slow = events(fs.readFileSync(process.argv[1], "utf8").replace(/^[\s\S]*?\r\n\r\n/, "").replace(/\r/g, ""));
const fast = events(fs.readFileSync(process.argv[2], "utf8"));
const cycles = Number(process.argv[3]);
const problems = [];
const models = fast.filter(e => e.name === "model");
if (fast.some(e => e.name === "dropped")) problems.push("the fast subscriber was told it dropped events");
if (models.length < 2 * cycles) problems.push(`the fast subscriber got ${models.length} model events, fewer than ${2 * cycles}`);
for (const e of models)
    if (e.data.model !== "tiny" || typeof e.data.action !== "string" || typeof e.data.reason !== "string"
        || typeof e.data.time !== "number" || typeof e.data.bytes_freed !== "number") { problems.push("a model event: " + JSON.stringify(e.data)); break; }
const dropped = slow.findIndex(e => e.name === "dropped");
if (dropped < 0) problems.push(`no dropped event among the ${slow.length} the slow subscriber got`);
else {
    const d = slow[dropped].data;
    if (!(Number.isInteger(d.dropped) && d.dropped > 0)) problems.push("dropped is not a positive count: " + JSON.stringify(d));
    if (typeof d.reason !== "string" || !d.reason.includes("read too slowly") || typeof d.time !== "number")
        problems.push("the dropped event has no reason or time: " + JSON.stringify(d));
    if (slow.slice(dropped + 1).filter(e => e.name === "model").length < 32) problems.push("fewer than 32 events after it");
    const received = slow.filter(e => e.name === "model").length;
    if (received + d.dropped < 2 * cycles) problems.push(`received ${received} + dropped ${d.dropped} < ${2 * cycles} events`);
    console.log(`  slow subscriber: ${slow.length} events, told of ${d.dropped} dropped; fast: ${fast.length} events, ${models.length} model events`);
    console.log("  " + JSON.stringify(slow[dropped].data));
}
if (problems.length) { console.log("  " + problems.join("\n  ")); process.exit(1); }
' "$scratch/slow.sse" "$scratch/fast.sse" "$cycles"
check "a slow subscriber is told how many events it missed (dropped, reason, time), a fast one misses none" $?
stop_server "$a_pid" a; check "headroomd stops cleanly" $?

# ---- degraded ----
[[ $failed -eq 0 ]] || { finish; exit; }
limited_cgroup headroom-events 400   # exits 77 (after the checks above) where it cannot
dd if="$mid" iflag=nocache count=0 2>/dev/null   # its pages are read (and charged) in the cgroup
start_server b --model "$mid" --port 0 --threads 1 --ctx 256 --pressure-actions off
b_url=$url b_pid=$pid
[[ -n $b_url ]] && echo "$b_pid" >"$cgroup/cgroup.procs"; check "headroomd with the 158 MiB model in a 400 MiB cgroup" $?
curl -sN --max-time 300 "$b_url/api/events" -o "$scratch/degraded.sse" &
subscriber=$!
helper_pids+=("$subscriber")
http POST "$b_url/v1/completions" '{"model":"mid","prompt":"Once upon a time","max_tokens":48,"temperature":0}'
status 200; check "healthy: 48 tokens (the guard learns the speed)" $?
echo $((120 * 1024 * 1024)) >"$cgroup/memory.limit_in_bytes"   # below the model: its weights are evicted
http POST "$b_url/v1/completions" '{"model":"mid","prompt":"Once upon a time","max_tokens":200,"temperature":0}' --max-time 120
echo "  in 120 MiB: HTTP $(cat "$scratch/status"): $(head -c 200 "$scratch/body")"
eventually 20 grep -q '^event: degraded' "$scratch/degraded.sse"
kill "$subscriber" 2>/dev/null; wait "$subscriber" 2>/dev/null
node -e '
const fs = require("fs");
const blocks = fs.readFileSync(process.argv[1], "utf8").split("\n\n").filter(b => b.startsWith("event: degraded"));
if (!blocks.length) { console.log("  no degraded event"); process.exit(1); }
const d = JSON.parse(/^data: (.*)$/m.exec(blocks[0])[1]);
console.log("  " + JSON.stringify(d));
const ok = d.model === "mid" && typeof d.level === "string" && d.tokens_per_second >= 0
    && d.expected_tokens_per_second > d.tokens_per_second && d.faults_per_token > 0
    && typeof d.reason === "string" && d.reason.length > 20 && typeof d.time === "number";
process.exit(ok ? 0 : 1);' "$scratch/degraded.sse"
check "event: degraded names the model and carries its figures (tokens/s, expected, faults per token, reason, time)" $?
echo $((400 * 1024 * 1024)) >"$cgroup/memory.limit_in_bytes"
stop_server "$b_pid" b; check "headroomd stops cleanly after the thrash" $?
finish
