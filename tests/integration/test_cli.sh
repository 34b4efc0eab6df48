#!/usr/bin/env bash
# test_cli.sh: the headroom command as a person uses it: streamed output, exit codes, and
# one clear line of error for bad model files, bad flags and Ctrl-C.
# usage: test_cli.sh HEADROOM_BINARY TINY_MODEL SCRATCH_DIR
set -u
headroom=$1 model=$2 scratch=$3
mkdir -p "$scratch"
passed=0 failed=0

check() {   # check NAME CONDITION-EXIT-CODE
    if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); echo "ok - $1"
    else failed=$((failed + 1)); echo "not ok - $1"; echo "  stdout: $(head -c 300 "$scratch/out")"; echo "  stderr: $(head -c 600 "$scratch/err")"; fi
}
run() { "$headroom" "$@" >"$scratch/out" 2>"$scratch/err"; echo $? >"$scratch/rc"; }
rc() { cat "$scratch/rc"; }
err_lines() { wc -l <"$scratch/err"; }

run run "$model" "Hello there" --max-tokens 8 --temp 0
[[ $(rc) -eq 0 && -s $scratch/out ]] && grep -q "8 tokens in" "$scratch/err"; check "run streams tokens and reports speed" $?

run run "$model" "Hello there" -n 8 --temp 0 --stats-json
grep -q '"generated_tokens":8' "$scratch/err" && grep -q '"stop_reason":"max_tokens"' "$scratch/err"; check "--stats-json prints the statistics as JSON" $?

echo "a prompt from stdin" | "$headroom" run "$model" - -n 4 -q >"$scratch/out" 2>"$scratch/err"
[[ $? -eq 0 && -s $scratch/out && ! -s $scratch/err ]]; check "prompt from stdin, --quiet prints no statistics" $?

run run "$scratch/missing.gguf"
[[ $(rc) -eq 1 && $(err_lines) -eq 1 ]] && grep -q "model file not found: $scratch/missing.gguf" "$scratch/err"; check "missing model: one line, exit 1" $?

echo "just some text" >"$scratch/text.gguf"
run run "$scratch/text.gguf"
[[ $(rc) -eq 1 && $(err_lines) -eq 1 ]] && grep -q "is not a GGUF model file: it starts with 'just'" "$scratch/err"; check "text file renamed .gguf: one line, exit 1" $?

head -c $(( $(stat -c %s "$model") / 2 )) "$model" >"$scratch/half.gguf"
run run "$scratch/half.gguf"
[[ $(rc) -eq 1 && $(err_lines) -eq 1 ]] && grep -q "is truncated" "$scratch/err"; check "truncated model: one line, exit 1" $?

printf 'GGUF\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee\xee' >"$scratch/corrupt.gguf"
run run "$scratch/corrupt.gguf"
[[ $(rc) -eq 1 && $(err_lines) -eq 1 ]] && grep -q "is corrupt" "$scratch/err"; check "corrupt header: one line, exit 1" $?

run run "$model" "Hi" -n 2 --verbose
[[ $(rc) -eq 0 ]] && grep -q "llama.cpp: " "$scratch/err" && grep -q "headroom: loaded" "$scratch/err"; check "--verbose shows the engine's log" $?

run run "$model" --max-tokens abc
[[ $(rc) -eq 2 ]] && grep -q -- "--max-tokens expects a whole number, not 'abc'" "$scratch/err"; check "bad flag value: exit 2 with the reason" $?

run run "$model" --ctx 8
[[ $(rc) -eq 2 ]] && grep -q -- "--ctx must be between" "$scratch/err"; check "context out of range: exit 2" $?

run run
[[ $(rc) -eq 2 ]] && grep -q "no model given" "$scratch/err"; check "no model: exit 2" $?

run frobnicate
[[ $(rc) -eq 2 ]] && grep -q "unknown command 'frobnicate'" "$scratch/err"; check "unknown command: exit 2" $?

# Ctrl-C while generating: the generation is cancelled cleanly and the exit code says so.
"$headroom" run "$model" "Tell me everything" -n 100000 --ctx 512 >"$scratch/out" 2>"$scratch/err" &
pid=$!
for _ in $(seq 1 200); do [[ -s $scratch/out ]] && break; sleep 0.01; done
kill -INT $pid
wait $pid; code=$?
[[ $code -eq 130 ]] && grep -q "stopped: cancelled" "$scratch/err"; check "SIGINT cancels the generation, exit 130 (got $code)" $?

# headroom pressure: the report, JSON a parser accepts, and a bounded live watch.
run pressure
[[ $(rc) -eq 0 ]] && grep -q "^level: *\(normal\|warn\|critical\)" "$scratch/out" && grep -q "^detection: " "$scratch/out"; check "pressure prints the level and how it is detected" $?

run pressure --json
[[ $(rc) -eq 0 ]] && node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (const k of ["level", "free_percent", "swap_used", "page_ins", "page_outs", "reason", "binding_scope", "effective_available_bytes"])
    if (!(k in o)) { console.error("missing " + k); process.exit(1); }
  if (!(o.memory.process_peak_rss_bytes >= o.memory.process_rss_bytes)) process.exit(1);' "$scratch/out"
check "pressure --json has the SDK's fields and the watermark" $?

run pressure --watch --interval 0.1 --count 3
[[ $(rc) -eq 0 && $(wc -l <"$scratch/out") -ge 3 ]]; check "pressure --watch --count 3 prints three lines and stops" $?

run pressure --interval 0
[[ $(rc) -eq 2 ]] && grep -q -- "--interval must be between" "$scratch/err"; check "pressure: a bad interval is a usage error" $?

# headroom check: the verdict as the exit code, the table, JSON, and errors with codes of their own.
run check "$model"
[[ $(rc) -eq 0 ]] && grep -q "^verdict: *ok" "$scratch/out" && grep -q "^CPU " "$scratch/out"; check "check: the tiny model fits, exit 0" $?

run check "$model" --json
[[ $(rc) -eq 0 ]] && node -e 'const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (!(o.total_bytes > 0) || o.verdict !== "ok" || !Array.isArray(o.devices) || o.devices.length < 1) process.exit(1);
  const sum = o.devices.reduce((s, d) => s + d.total_bytes, 0);
  if (sum !== o.total_bytes || o.devices[0].name !== "CPU") process.exit(1);' "$scratch/out"
check "check --json: total_bytes is the sum of devices[]" $?

run check "$model" --min-free 1000000000000000
[[ $(rc) -eq 2 ]] && grep -q "^verdict: *refuse" "$scratch/out" && grep -q "^guidance: " "$scratch/out"; check "check: refused with guidance, exit 2" $?

run check "$model" --recommended-total 1000000000000000
[[ $(rc) -eq 1 ]] && grep -q "^verdict: *warn" "$scratch/out"; check "check: below the recommended total, exit 1" $?

run check "$scratch/missing.gguf"
[[ $(rc) -eq 3 && $(err_lines) -eq 1 ]] && grep -q "model file not found" "$scratch/err"; check "check: missing model: one line, exit 3" $?

run check "$model" --type-k q3_x
[[ $(rc) -eq 64 ]] && grep -q "unknown K cache type 'q3_x'" "$scratch/err"; check "check: an unknown cache type is a usage error" $?

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
