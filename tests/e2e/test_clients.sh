#!/usr/bin/env bash
# test_clients.sh: headroomd through the official openai and ollama npm packages
# (tests/e2e/clients.mjs), with an API key as a deployment would have.
# usage: test_clients.sh HEADROOMD TINY_MODEL WORK_DIR [SCRIPT]
# SCRIPT (default clients.mjs) is the checks to run: tools.mjs runs the tool-call checks on a
# model made with --template hermes.
# The packages pinned in package-lock.json are installed with `npm ci` into WORK_DIR (in the
# build tree, never under tests/) and reused while package.json and the lock are unchanged.
# Exits 77 (skipped) when node or npm is missing or the npm registry cannot be reached.
set -u
headroomd=$1 model=$2 work=$3 script=${4:-clients.mjs}
scratch=$work/scratch-${script%.mjs}
mkdir -p "$work"; rm -rf "$scratch"; mkdir -p "$scratch"
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
for tool in node npm curl; do
    command -v $tool >/dev/null || { echo "skipped: $tool is not installed"; exit 77; }
done

stamp=$(cat "$e2e_dir/package.json" "$e2e_dir/package-lock.json" | md5sum | cut -d' ' -f1)
cp "$e2e_dir/$script" "$work/"
if [[ $(cat "$work/node_modules/.headroom-stamp" 2>/dev/null) != "$stamp" ]]; then
    cp "$e2e_dir/package.json" "$e2e_dir/package-lock.json" "$work/"
    if ! (cd "$work" && npm ci --no-audit --no-fund --prefer-offline --fetch-timeout=30000 --fetch-retries=1 \
                                --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000) >"$scratch/npm.log" 2>&1; then
        if ! timeout 30 npm ping --fetch-retries=0 >>"$scratch/npm.log" 2>&1; then
            echo "skipped: npm cannot reach its registry to install openai and ollama ($(grep -m1 -i 'err' "$scratch/npm.log"))"
            exit 77
        fi
        echo "not ok - npm ci installs the pinned openai and ollama packages"; sed 's/^/  /' "$scratch/npm.log" | tail -20
        exit 1
    fi
    echo "$stamp" >"$work/node_modules/.headroom-stamp"
fi
echo "# openai $(node -p 'require(process.argv[1]).version' "$work/node_modules/openai/package.json")," \
     "ollama $(node -p 'require(process.argv[1]).version' "$work/node_modules/ollama/package.json")"

start_server clients --model "$model" --port 0 --threads 1 --ctx 8192 --api-key secret
check "headroomd starts (with --api-key)" $?
[[ -n $url ]] || { cat "$scratch/clients.err"; finish; exit 1; }

(cd "$work" && node "$script" "$url" secret) >"$scratch/clients.out" 2>&1
cat "$scratch/clients.out"
passed=$((passed + $(grep -c '^ok - ' "$scratch/clients.out")))
failed=$((failed + $(grep -c '^not ok - ' "$scratch/clients.out")))
grep -q "^# $script: every check ran" "$scratch/clients.out"; check "$script ran to its end" $?

stop_server "$pid" clients; check "headroomd stops on SIGTERM: exit 0, no sanitizer report" $?
finish
