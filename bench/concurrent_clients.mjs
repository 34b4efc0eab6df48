// concurrent_clients.mjs: CLIENTS streamed completions started at once against one server, for
// bench/concurrency.sh. usage: node bench/concurrent_clients.mjs URL CLIENTS BODY_JSON
//
// Prints one JSON line: clients, ok (requests that ended without error), tokens (all completion
// tokens), wall_s (first request sent to last one ended), aggregate_tps (tokens / wall_s),
// ttft_median_s, ttft_p95_s (nearest rank), ttft_max_s, per_stream_tps_median (each stream's own decode rate), statuses
// (HTTP status counts) and the first error seen.
import { streamCompletion } from './sse_client.mjs';

const [url, clientsText, body] = process.argv.slice(2);
const clients = Number(clientsText);
if (!url || !(clients > 0) || !body) {
    console.error('usage: node concurrent_clients.mjs URL CLIENTS BODY_JSON');
    process.exit(2);
}
const median = (values) => {
    const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
    if (v.length === 0) return null;
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const percentile = (values, p) => {
    const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
    if (v.length === 0) return null;
    return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)];
};
const results = await Promise.all(Array.from({ length: clients }, () => streamCompletion(url, body)));
const ok = results.filter((r) => !r.error);
const started = Math.min(...results.map((r) => r.started_ms));
const ended = Math.max(...results.map((r) => r.ended_ms));
const tokens = ok.reduce((sum, r) => sum + (r.completion_tokens || 0), 0);
const wall = (ended - started) / 1000;
const statuses = {};
for (const r of results) statuses[r.status ?? 'none'] = (statuses[r.status ?? 'none'] || 0) + 1;
process.stdout.write(JSON.stringify({
    clients, ok: ok.length, tokens, wall_s: wall, aggregate_tps: wall > 0 ? tokens / wall : null,
    ttft_median_s: median(ok.map((r) => r.ttft_s)), ttft_p95_s: percentile(ok.map((r) => r.ttft_s), 95),
    ttft_max_s: Math.max(...ok.map((r) => r.ttft_s ?? 0)),
    per_stream_tps_median: median(ok.map((r) => r.tokens_per_second)), statuses,
    error: (results.find((r) => r.error) || {}).error || null,
}) + '\n');
