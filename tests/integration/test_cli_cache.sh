#!/usr/bin/env bash
# test_cli_cache.sh: `headroom cache ls` and `headroom cache clear` as a person uses them: where
# the cache is, what is listed, confirmation, and that clearing removes only headroom's files.
# usage: test_cli_cache.sh HEADROOM_BINARY TEST_KVCACHE_BINARY TINY_MODEL SCRATCH_DIR
set -u
headroom=$1 make_snapshots=$2 model=$3 scratch=$4
rm -rf "$scratch"
mkdir -p "$scratch"
passed=0 failed=0

check() {   # check NAME CONDITION-EXIT-CODE
    if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); echo "ok - $1"
    else failed=$((failed + 1)); echo "not ok - $1"; echo "  stdout: $(head -c 600 "$scratch/out")"; echo "  stderr: $(head -c 600 "$scratch/err")"; fi
}
run() { "$headroom" "$@" >"$scratch/out" 2>"$scratch/err" </dev/null; echo $? >"$scratch/rc"; }
rc() { cat "$scratch/rc"; }

cache=$scratch/cache
kv=$cache/kv

# where the cache is: --cache-dir, else HEADROOM_CACHE_DIR, else XDG_CACHE_HOME, else HOME
run cache ls --cache-dir "$cache"
[[ $(rc) -eq 0 ]] && grep -q "cache: $kv" "$scratch/out" && grep -q "0 snapshots, 0 B of a 2.0 GiB budget" "$scratch/out"
check "ls on an empty cache: 0 snapshots against the default budget" $?
HEADROOM_CACHE_DIR=$scratch/env run cache ls
grep -q "cache: $scratch/env/kv" "$scratch/out"; check "HEADROOM_CACHE_DIR is the cache" $?
env -u HEADROOM_CACHE_DIR XDG_CACHE_HOME=$scratch/xdg "$headroom" cache ls >"$scratch/out" 2>"$scratch/err"
grep -q "cache: $scratch/xdg/headroom/kv" "$scratch/out"; check "else XDG_CACHE_HOME/headroom" $?
env -u HEADROOM_CACHE_DIR -u XDG_CACHE_HOME HOME=$scratch/home "$headroom" cache ls >"$scratch/out" 2>"$scratch/err"
grep -q "cache: $scratch/home/.cache/headroom/kv" "$scratch/out"; check "else ~/.cache/headroom" $?
[[ ! -e $scratch/home/.cache ]]; check "listing creates nothing" $?

"$make_snapshots" --make-snapshots "$model" "$cache" 2 || { echo "Bail out! could not make snapshots"; exit 1; }
echo "mine" >"$kv/notes.txt"
echo "outside" >"$scratch/target.hrkv"
ln -s "$scratch/target.hrkv" "$kv/ffffffffffffffff-ffffffffffffffff-ffffffff.hrkv"

run cache ls --cache-dir "$cache"
[[ $(rc) -eq 0 && $(grep -c '^tiny ' "$scratch/out") -eq 2 ]] && grep -q "2 snapshots, .* of a 2.0 GiB budget" "$scratch/out" \
    && ! grep -q "notes.txt\|ffffffff" "$scratch/out"
check "ls lists the two snapshots, not the foreign file or the link" $?

run cache ls --json --cache-dir "$cache"
[[ $(rc) -eq 0 && $(grep -o '"path":' "$scratch/out" | wc -l) -eq 2 ]] && grep -q '"model":"tiny"' "$scratch/out" \
    && grep -q '"budget_bytes":2147483648' "$scratch/out" && grep -q '"tokens":' "$scratch/out"
check "ls --json: the same as one JSON object" $?

run cache clear --cache-dir "$cache"
[[ $(rc) -eq 2 && $(ls "$kv"/*.hrkv | wc -l) -eq 3 ]] && grep -q "would remove 2 snapshots" "$scratch/out" \
    && grep -q -- "--force" "$scratch/err"
check "clear without a terminal removes nothing and says to use --force" $?

snapshot=$(find "$kv" -maxdepth 1 -type f -name "*.hrkv" | sort | head -1)
if chattr +i "$snapshot" 2>/dev/null; then
    run cache clear --force --cache-dir "$cache"
    chattr -i "$snapshot"
    [[ $(rc) -eq 1 && -e $snapshot ]] && grep -q "cannot remove $snapshot: Operation not permitted" "$scratch/err" \
        && grep -q "removed 1 file" "$scratch/out"
    check "clear --force reports a file it cannot remove and removes the rest" $?
else
    echo "ok - # SKIP the permission-error check: chattr +i is not allowed here"
fi

run cache clear --force --cache-dir "$cache"
[[ $(rc) -eq 0 && -e $kv/notes.txt && -L $kv/ffffffffffffffff-ffffffffffffffff-ffffffff.hrkv && -e $scratch/target.hrkv ]] \
    && [[ $(ls "$kv" | wc -l) -eq 2 ]] && grep -q "left 2 entries that are not headroom's alone" "$scratch/out"
check "clear --force removes only headroom's files, follows no link" $?

mv "$kv" "$cache/real-kv" && ln -s "$cache/real-kv" "$kv"
run cache ls --cache-dir "$cache"
[[ $(rc) -eq 1 ]] && grep -q "is a symbolic link" "$scratch/err"; check "a kv/ that is a link is refused" $?

run cache
[[ $(rc) -eq 2 ]]; check "cache without a command: exit 2" $?
run cache ls --force
[[ $(rc) -eq 2 ]] && grep -q -- "--force is for 'cache clear'" "$scratch/err"; check "ls --force: exit 2" $?
run cache prune
[[ $(rc) -eq 2 ]] && grep -q "unknown cache command 'prune'" "$scratch/err"; check "unknown cache command: exit 2" $?

echo "1..$((passed + failed))"
[[ $failed -eq 0 ]]
