#!/usr/bin/env bash
# test_dashboard.sh: the dashboard in a real browser: Debian's chromium driven by playwright-core
# (dashboard.mjs) against a headroomd started with --api-key. Screenshots go to SHOTS_DIR.
# usage: test_dashboard.sh HEADROOMD MODEL WORK_DIR SHOTS_DIR [--pressure]
#   default      the key prompt, history charts, load, unload and keep-alive from the page, a
#                running generation followed by the charts, outcomes in words, dark mode
#   --pressure   headroomd in a child memory cgroup (v1) limited to 256 MiB, a hog fills it: the
#                pressure change shows on the page as an event with its reason within a second
# playwright-core (pinned in package-lock.json) is installed with `npm ci` into WORK_DIR, in the
# build tree, and reused while the lock is unchanged. Exits 77 (skipped) with the reason when
# chromium, node or npm is missing, npm cannot reach its registry for a first install, or (with
# --pressure) no child memory cgroup can be made.
set -u
headroomd=$1 model=$2 work=$3 shots=$4 mode=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$work/scratch${mode:+-pressure}
mkdir -p "$work" "$shots"; rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=../e2e/lib.sh
source "$here/../e2e/lib.sh"
skip() { echo "skipped: $*"; exit 77; }
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[[ -n $chromium ]] || skip "chromium is not installed (apt-get install chromium; .ci/run installs it)"
for tool in node npm curl; do command -v $tool >/dev/null || skip "$tool is not installed"; done

cgroup=""
remove_cgroup() {
    [[ -n $cgroup && -d $cgroup ]] || return 0
    # what is still in it is ours: the hog (should the browser script have died) and headroomd
    while read -r stray; do kill -KILL "$stray" 2>/dev/null; done <"$cgroup/cgroup.procs"
    for _ in $(seq 1 50); do rmdir "$cgroup" 2>/dev/null && break; sleep 0.1; done
}
trap 'cleanup; remove_cgroup' EXIT
if [[ $mode == --pressure ]]; then
    [[ $(id -u) -eq 0 ]] || skip "not root: cannot create a child memory cgroup for the hog"
    own=$(sed -n 's/^[0-9]*:[^:]*\bmemory\b[^:]*://p' /proc/self/cgroup | head -n 1)
    [[ -n $own ]] || skip "no cgroup v1 memory controller in /proc/self/cgroup (this test speaks v1)"
    cgroup=/sys/fs/cgroup/memory${own%/}/headroom-dashboard-$$
    error=$(mkdir "$cgroup" 2>&1) || { cgroup=""; skip "cannot create a child memory cgroup: ${error#mkdir: }"; }
    error=$( (echo $((256 * 1024 * 1024)) >"$cgroup/memory.limit_in_bytes") 2>&1) \
        || { remove_cgroup; skip "cannot set a memory limit on $cgroup: ${error##*: }"; }
fi

stamp=$(cat "$here/package.json" "$here/package-lock.json" | md5sum | cut -d' ' -f1)
if [[ $(cat "$work/node_modules/.headroom-stamp" 2>/dev/null) != "$stamp" ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$work/"
    if ! (cd "$work" && npm ci --no-audit --no-fund --prefer-offline --fetch-timeout=30000 --fetch-retries=1 \
                                --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000) >"$scratch/npm.log" 2>&1; then
        if ! timeout 30 npm ping --fetch-retries=0 >>"$scratch/npm.log" 2>&1; then
            remove_cgroup
            skip "npm cannot reach its registry to install playwright-core ($(grep -m1 -i 'err' "$scratch/npm.log"))"
        fi
        echo "not ok - npm ci installs the pinned playwright-core"; sed 's/^/  /' "$scratch/npm.log" | tail -20
        remove_cgroup; exit 1
    fi
    echo "$stamp" >"$work/node_modules/.headroom-stamp"
fi
cp "$here/dashboard.mjs" "$work/"
echo "# playwright-core $(node -p 'require(process.argv[1]).version' "$work/node_modules/playwright-core/package.json"), $("$chromium" --version 2>/dev/null | head -n 1)"

start_server dashboard --model "$model" --port 0 --api-key secret --keep-alive 10m
check "headroomd starts (with --api-key)" $?
[[ -n $url ]] || { cat "$scratch/dashboard.err"; remove_cgroup; finish; exit 1; }
hog=()
if [[ $mode == --pressure ]]; then
    echo "$pid" >"$cgroup/cgroup.procs"
    # the hog joins the cgroup, takes memory 4 MiB at a time until 97% of the limit is in use and
    # holds it; it is the OOM killer's first choice, should the kernel have to choose
    hog=(sh -c "echo \$\$ >'$cgroup/cgroup.procs'; echo 1000 >/proc/self/oom_score_adj; exec node -e '
        const fs = require(\"fs\"), cg = process.argv[1], held = [];
        const read = f => Number(fs.readFileSync(cg + \"/\" + f, \"utf8\"));
        const limit = read(\"memory.limit_in_bytes\");
        while (read(\"memory.usage_in_bytes\") < 0.97 * limit) held.push(Buffer.alloc(4 << 20, 1));
        setInterval(() => {}, 1000);' '$cgroup'")
fi
name=$(basename "$model" .gguf)
(cd "$work" && CHROMIUM=$chromium timeout 240 node dashboard.mjs "$url" secret "$name" "$shots" $mode "${hog[@]}") \
    >"$scratch/browser.out" 2>&1
code=$?
cat "$scratch/browser.out"
check "the browser checks pass (exit $code)" $code
if [[ $mode == --pressure ]]; then
    kills=$(sed -n 's/^oom_kill //p' "$cgroup/memory.oom_control" 2>/dev/null)
    echo "# OOM kills in the test's cgroup: ${kills:-unknown}"
fi
stop_server "$pid" dashboard; check "headroomd stops cleanly" $?
remove_cgroup
echo "# screenshots: $(cd "$shots" && ls ./*.png 2>/dev/null | tr '\n' ' ')in $shots"
finish
