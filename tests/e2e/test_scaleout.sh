#!/usr/bin/env bash
# test_scaleout.sh: two headroomd nodes behind nginx. Node A is moved into a child memory
# cgroup with a 256 MiB limit and a hog fills it until A's memory pressure is critical: A's
# /ready answers 503 and new generations get 503 with Retry-After, nginx passes them to node B,
# and every request through nginx still succeeds. Exits 77 (skipped) with the reason where
# nginx, root or a child memory cgroup is not available.
# usage: test_scaleout.sh HEADROOMD TINY_MODEL SCRATCH_DIR
set -u
headroomd=$1 model=$2 scratch=$3
rm -rf "$scratch"; mkdir -p "$scratch"
passed=0 failed=0 pids=() cgroup=""

skip() { echo "skipped: $*"; exit 77; }
check() {
    if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); echo "ok - $1"
    else failed=$((failed + 1)); echo "not ok - $1"; fi
}
cleanup() {
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    if [[ -n $cgroup && -d $cgroup ]]; then
        for _ in $(seq 1 50); do rmdir "$cgroup" 2>/dev/null && break; sleep 0.1; done
    fi
}
trap cleanup EXIT

command -v nginx >/dev/null || skip "nginx is not installed (.ci/run installs it: apt-get install nginx-light)"
command -v node >/dev/null || skip "node is not installed (the hog is a Node one-liner)"
[[ $(id -u) -eq 0 ]] || skip "not root: cannot create a child memory cgroup"
own=$(sed -n 's/^[0-9]*:[^:]*\bmemory\b[^:]*://p' /proc/self/cgroup | head -n 1)
[[ -n $own ]] || skip "no cgroup v1 memory controller in /proc/self/cgroup"
[[ $own == / ]] && own=""
cgroup=/sys/fs/cgroup/memory$own/headroom-scaleout-$$
error=$(mkdir "$cgroup" 2>&1) || { cgroup=""; skip "cannot create a child memory cgroup: ${error#mkdir: }"; }
error=$( (echo $((256 * 1024 * 1024)) >"$cgroup/memory.limit_in_bytes") 2>&1) \
    || skip "cannot set a memory limit on $cgroup: ${error##*: }"

start_node() {   # start_node NAME: starts headroomd, sets NAME_port and NAME_pid
    "$headroomd" --model "$model" --port 0 --keep-alive -1 --allowed-host headroom >"$scratch/$1.out" 2>"$scratch/$1.err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do grep -q listening "$scratch/$1.out" 2>/dev/null && break; sleep 0.05; done
    printf -v "$1_port" '%s' "$(sed -n 's/.*:\([0-9]*\) (.*/\1/p' "$scratch/$1.out")"
    printf -v "$1_pid" '%s' "$pid"
}
start_node a
start_node b
[[ -n $a_port && -n $b_port ]]; check "two nodes listen (ports $a_port and $b_port)" $?

# Node A goes into the limited cgroup; its monitor then sees that limit as what binds it.
echo "$a_pid" >"$cgroup/cgroup.procs"
ready() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ready"; }
a_code=$(ready "$a_port") b_code=$(ready "$b_port")
[[ $a_code == 200 ]] || curl -s "http://127.0.0.1:$a_port/ready"
[[ $a_code == 200 && $b_code == 200 ]]; check "both nodes are ready before the hog ($a_code, $b_code)" $?

lb_port=$(( 20000 + RANDOM % 20000 ))
cat >"$scratch/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $scratch/nginx.pid;
error_log $scratch/nginx-error.log warn;
events { worker_connections 64; }
http {
    access_log $scratch/nginx-access.log;
    client_body_temp_path $scratch/body;
    proxy_temp_path $scratch/proxy;
    fastcgi_temp_path $scratch/fastcgi;
    uwsgi_temp_path $scratch/uwsgi;
    scgi_temp_path $scratch/scgi;
    log_format upstreams '\$upstream_addr \$upstream_status';
    upstream headroom {
        server 127.0.0.1:$a_port max_fails=0;
        server 127.0.0.1:$b_port max_fails=0;
    }
    server {
        listen 127.0.0.1:$lb_port;
        access_log $scratch/upstreams.log upstreams;
        location / {
            proxy_pass http://headroom;
            proxy_http_version 1.1;
            proxy_buffering off;
            # a node under critical pressure answers 503: try the other (POST included)
            proxy_next_upstream error timeout http_503 non_idempotent;
        }
    }
}
EOF
nginx -p "$scratch" -c "$scratch/nginx.conf" &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$lb_port/health" && break; sleep 0.05; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lb_port/health")
[[ $code == 200 ]] || { cat "$scratch/nginx-error.log"; }
[[ $code == 200 ]]; check "nginx balances the two nodes on port $lb_port" $?

# The hog joins the cgroup, then takes memory 4 MiB at a time until 97% of the limit is in use
# (its own runtime counts too), and holds it. It is the OOM killer's first choice, should it act.
sh -c "echo \$\$ >'$cgroup/cgroup.procs'; echo 1000 >/proc/self/oom_score_adj; exec node -e '
    const fs = require(\"fs\"), cg = process.argv[1], held = [];
    const read = f => Number(fs.readFileSync(cg + \"/\" + f, \"utf8\"));
    const limit = read(\"memory.limit_in_bytes\");
    while (read(\"memory.usage_in_bytes\") < 0.97 * limit) held.push(Buffer.alloc(4 << 20, 1));
    setInterval(() => {}, 1000);' '$cgroup'" &
pids+=($!)
for _ in $(seq 1 100); do [[ $(ready "$a_port") == 503 ]] && break; sleep 0.1; done
[[ $(ready "$a_port") == 503 ]]; check "node A under critical pressure: /ready answers 503" $?
curl -s "http://127.0.0.1:$a_port/ready" >"$scratch/a-ready.json"
grep -q '"pressure":"critical"' "$scratch/a-ready.json"; verdict=$?; check "node A says why: $(head -c 160 "$scratch/a-ready.json")" $verdict

direct=$(curl -s -D - -o "$scratch/direct.json" "http://127.0.0.1:$a_port/v1/completions" \
         -d '{"model":"tiny","prompt":"Hello","max_tokens":4}')
grep -q "^HTTP/1.1 503" <<<"$direct" && grep -qi "^Retry-After: " <<<"$direct"
check "node A refuses new generations with 503 and Retry-After" $?

ok=0
for i in $(seq 1 10); do
    code=$(curl -s -o "$scratch/lb-$i.json" -w '%{http_code}' "http://127.0.0.1:$lb_port/v1/completions" \
           -d '{"model":"tiny","prompt":"Hello","max_tokens":4}')
    [[ $code == 200 ]] && grep -q '"completion_tokens":4' "$scratch/lb-$i.json" && ok=$((ok + 1))
done
[[ $ok -eq 10 ]]; check "10 of 10 requests through nginx succeed ($ok)" $?
# a retried request logs both upstreams: "127.0.0.1:A, 127.0.0.1:B 503, 200"
grep -q "127.0.0.1:$a_port, 127.0.0.1:$b_port 503, 200" "$scratch/upstreams.log"
check "nginx tried node A, got 503, and went on to node B" $?

kills=$(sed -n 's/^oom_kill //p' "$cgroup/memory.oom_control")
[[ ${kills:-0} -eq 0 ]]; check "no OOM kill in node A's cgroup" $?

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
