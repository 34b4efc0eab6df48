#!/usr/bin/env bash
# test_fault_psi.sh: headroomd on a kernel without PSI. headroomd runs in a mount namespace where
# an empty tmpfs hides /proc/pressure and the cgroup2 tree (as a kernel built without PSI has
# neither file), inside a 256 MiB child memory cgroup. It must start, say "PSI unavailable" in
# /api/memory's detection line, serve, and still classify pressure from the cgroup's and
# meminfo's figures: a hog filling the cgroup makes /ready 503 (critical), and after the hog
# leaves it serves again. Exits 77 (skipped) with the reason without root, unshare, node or a
# child memory cgroup.
# usage: test_fault_psi.sh HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
real_headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
headroomd=$scratch/headroomd-without-psi
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

command -v node >/dev/null || { echo "skipped: node is not installed (the hog is a Node one-liner)"; exit 77; }
command -v unshare >/dev/null || { echo "skipped: unshare (util-linux) is not installed"; exit 77; }
error=$(unshare -m sh -c 'mount -t tmpfs none /proc/pressure' 2>&1) \
    || { echo "skipped: cannot hide /proc/pressure in a mount namespace: $error"; exit 77; }
limited_cgroup headroom-fault-psi 256

# unshare and sh exec, so the pid start_server gets is headroomd's own
cat >"$headroomd" <<WRAPPER
#!/bin/sh
exec unshare -m sh -c 'mount -t tmpfs none /proc/pressure || exit 1
    [ ! -d /sys/fs/cgroup/unified ] || mount -t tmpfs none /sys/fs/cgroup/unified || exit 1
    exec "\$0" "\$@"' "$real_headroomd" "\$@"
WRAPPER
chmod +x "$headroomd"

start_server a --model "$model" --port 0 --threads 1 --ctx 256
a_url=$url a_pid=$pid
[[ -n $a_url ]]; check "headroomd starts on a kernel without PSI" $?
[[ -z $a_url ]] && { sed 's/^/  /' "$scratch/a.err" | tail -5; finish; exit; }
[[ ! -e /proc/$a_pid/root/proc/pressure/memory ]] && ! grep -q "PSI trigger" <(curl -s "$a_url/api/memory")
check "... and sees no PSI: no pressure file, no PSI trigger" $?
echo "$a_pid" >"$cgroup/cgroup.procs"; check "headroomd runs in the 256 MiB cgroup" $?

http GET "$a_url/api/memory"
status 200 && expect 'json.pressure.detection.includes("PSI unavailable") && json.pressure.level === "normal"
    && json.pressure.stall_some_percent === 0 && json.pressure.reason.includes("MiB available")'
check "/api/memory says PSI unavailable and classifies from the memory figures" $?
expect 'true' && node -e 'console.log("  detection: " + JSON.parse(require("fs").readFileSync(process.argv[1])).pressure.detection)' "$scratch/body"
http GET "$a_url/ready"
status 200 && expect 'json.ready === true'; check "/ready: 200" $?
request='{"model":"tiny","prompt":"Once upon a time","max_tokens":6,"temperature":0}'
http POST "$a_url/v1/completions" "$request"
status 200 && expect 'json.choices[0].text.length > 0'; check "a generation is served" $?

# The hog joins the cgroup and takes memory 4 MiB at a time until 97% of the limit is in use.
sh -c "echo \$\$ >'$cgroup/cgroup.procs'; echo 1000 >/proc/self/oom_score_adj; exec node -e '
    const fs = require(\"fs\"), cg = process.argv[1], held = [];
    const read = f => Number(fs.readFileSync(cg + \"/\" + f, \"utf8\"));
    const limit = read(\"memory.limit_in_bytes\");
    while (read(\"memory.usage_in_bytes\") < 0.97 * limit) held.push(Buffer.alloc(4 << 20, 1));
    setInterval(() => {}, 1000);' '$cgroup'" &
hog=$!
helper_pids+=("$hog")
ready() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$a_url/ready"; }
for _ in $(seq 1 150); do [[ $(ready) == 503 ]] && break; sleep 0.1; done
http GET "$a_url/ready"
status 503 && expect 'json.pressure === "critical" && json.reason.includes("cgroup")'
check "with the cgroup full and no PSI, pressure is critical from the cgroup's figures: /ready 503" $?
expect 'true' && node -e 'console.log("  /ready said: " + JSON.parse(require("fs").readFileSync(process.argv[1])).reason)' "$scratch/body"

kill -KILL "$hog" 2>/dev/null; wait "$hog" 2>/dev/null
for _ in $(seq 1 300); do [[ $(ready) == 200 ]] && break; sleep 0.1; done
[[ $(ready) == 200 ]]; check "after the hog leaves, /ready is 200 again" $?
http POST "$a_url/v1/completions" "$request"
status 200 && expect 'json.choices[0].text.length > 0'; check "... and generations are served again" $?

stop_server "$a_pid" a; check "headroomd stops cleanly" $?
finish
