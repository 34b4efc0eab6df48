// soak.mjs: a bounded soak of headroomd, for test_soak.sh. usage:
//   node soak.mjs URL MODEL PID REQUESTS CONCURRENCY CHECK_RSS(0|1)
// CONCURRENCY loops send REQUESTS requests in all, each drawn (from a seeded generator, so a run
// can be repeated) from: whole and streamed completions and chats on both APIs, streams the
// client aborts after the first chunk, connections dropped mid-request or before the body ends,
// slow readers, bad inputs (malformed JSON, wrong types, invalid UTF-8, unknown models, limits),
// load and unload, and the operations endpoints. Every reply's status must be one the API
// documents for that request (never a 500, never a hang past 60 s). After a warm-up (the first
// tenth) the server's RSS, open descriptors and threads are read while it is idle with the model
// loaded; at the end, idle again with the model loaded, anonymous RSS must not have grown by
// more than 5% (at least 2 MiB; when CHECK_RSS), and descriptors and threads are back to it.
// Prints "ok - ..." / "not ok - ..." lines.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const [url, model, pidText, requestsText, concurrencyText, checkRssText] = process.argv.slice(2);
const pid = Number(pidText), total = Number(requestsText), concurrency = Number(concurrencyText);
const checkRss = checkRssText === '1';
const { hostname, port } = new URL(url);

let seed = 12345;
const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const counts = {}, problems = [];
const note = (kind, status) => { const k = `${kind} ${status}`; counts[k] = (counts[k] || 0) + 1; };

function request(method, path, body, { abortAfterFirst = false, slow = false, rawBody = null } = {}) {
    return new Promise((resolve) => {
        const data = rawBody ?? (body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
        const req = http.request({ hostname, port, path, method, agent: false, timeout: 60000,
            headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {} }, (res) => {
            let chunks = 0, text = '';
            res.on('data', async (chunk) => {
                chunks++;
                if (text.length < 4096) text += chunk;
                if (abortAfterFirst && chunks === 1) { req.destroy(); resolve({ status: res.statusCode, aborted: true }); }
                if (slow) { res.pause(); await sleep(150); res.resume(); }
            });
            res.on('end', () => resolve({ status: res.statusCode, text }));
            res.on('error', () => resolve({ status: res.statusCode, aborted: true }));
        });
        req.on('timeout', () => { req.destroy(); resolve({ status: 'timeout' }); });
        req.on('error', (e) => resolve({ status: abortAfterFirst ? 'aborted' : `error ${e.code}` }));
        req.end(data);
    });
}

// A connection that sends part of a request and hangs up.
function dropMidRequest(kind) {
    return new Promise((resolve) => {
        const socket = net.connect(Number(port), hostname, () => {
            const body = JSON.stringify({ model, prompt: 'Once upon a time', max_tokens: 32, stream: true });
            if (kind === 'headers') socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
            else socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
            setTimeout(() => { socket.destroy(); resolve({ status: 'dropped' }); }, kind === 'headers' ? 5 : 60);
        });
        socket.on('error', () => resolve({ status: 'dropped' }));
    });
}

const prompt = () => ['Once upon a time', 'The weather today', 'In a small village', 'Hello'][Math.floor(random() * 4)];
const generation = { 200: true, 503: true };   // 503: a model being unloaded as the request starts
const actions = [
    [18, 'openai completion', () => request('POST', '/v1/completions', { model, prompt: prompt(), max_tokens: 8, temperature: 0 }), generation],
    [14, 'openai stream', () => request('POST', '/v1/completions', { model, prompt: prompt(), max_tokens: 12, stream: true }), generation],
    [8, 'openai chat', () => request('POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: prompt() }], max_tokens: 8 }), generation],
    [8, 'ollama generate', () => request('POST', '/api/generate', { model, prompt: prompt(), stream: random() < 0.5, options: { num_predict: 8, seed: 1 } }), generation],
    [5, 'ollama chat', () => request('POST', '/api/chat', { model, messages: [{ role: 'user', content: prompt() }], options: { num_predict: 6 } }), generation],
    [10, 'stream aborted', () => request('POST', '/v1/completions', { model, prompt: prompt(), max_tokens: 64, stream: true }, { abortAfterFirst: true }), { ...generation, aborted: true }],
    [6, 'dropped after headers', () => dropMidRequest('headers'), { dropped: true }],
    [4, 'dropped after body', () => dropMidRequest('body'), { dropped: true }],
    [3, 'slow reader', () => request('POST', '/v1/completions', { model, prompt: prompt(), max_tokens: 16, stream: true }, { slow: true }), generation],
    [4, 'malformed json', () => request('POST', '/v1/completions', undefined, { rawBody: Buffer.from('{"model": "x", "prompt": ') }), { 400: true }],
    [3, 'invalid utf-8', () => request('POST', '/api/generate', undefined, { rawBody: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }), { 400: true }],
    [3, 'wrong types', () => request('POST', '/v1/chat/completions', { model, messages: 'hi', max_tokens: 'x' }), { 400: true }],
    [3, 'unknown model', () => request('POST', '/api/chat', { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), { 404: true }],
    [2, 'over the token limit', () => request('POST', '/v1/completions', { model, prompt: 'x', max_tokens: 10000000 }), { 400: true }],
    [2, 'bad keep_alive', () => request('POST', '/api/generate', { model, prompt: 'x', keep_alive: '1e300h' }), { 400: true }],
    [2, 'unload', () => request('POST', '/api/unload', { model }), { 200: true, 409: true }],
    [2, 'load', () => request('POST', '/api/load', { model }), { 200: true, 503: true }],
    [3, 'operations', () => request('GET', ['/metrics', '/api/memory', '/api/generations', '/api/active', '/ready', '/api/ps', '/api/tags'][Math.floor(random() * 7)]), { 200: true }],
];
const weight = actions.reduce((s, a) => s + a[0], 0);
function pick() {
    let r = random() * weight;
    for (const a of actions) if ((r -= a[0]) < 0) return a;
    return actions[0];
}

function readProc() {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number((status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm')) || [])[1]);
    return { rss_kb: field('VmRSS'), anon_kb: field('RssAnon'), threads: field('Threads'), fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}
// Idle with the model reloaded and used once (so its worker thread runs, as after any request):
// no generation in flight, then the threads and descriptors read until they hold still for a
// second (connection threads end a moment after their reply).
async function settle() {
    // an unload trims the heap (malloc_trim), so both readings start from a trimmed heap
    await request('POST', '/api/unload', { model });
    await request('POST', '/v1/completions', { model, prompt: 'x', max_tokens: 1 });
    for (let i = 0; i < 50; i++) {
        const active = await request('GET', '/api/active');
        if (active.status === 200 && active.text.trim() === '[]') break;
        await sleep(200);
    }
    let last = readProc(), still = 0;
    for (let i = 0; i < 60 && still < 4; i++) {
        await sleep(250);
        const now = readProc();
        still = now.threads === last.threads && now.fds === last.fds ? still + 1 : 0;
        last = now;
    }
    return last;
}

let sent = 0, target = 0;
async function loop() {
    while (sent < target) {
        const n = ++sent;
        const [, kind, run, allowed] = pick();
        const result = await run();
        note(kind, result.status);
        if (!allowed[result.status] && problems.length < 20)
            problems.push(`request ${n} (${kind}): status ${result.status} ${String(result.text || '').slice(0, 200)}`);
    }
}
const soak = (upTo) => { target = upTo; return Promise.all(Array.from({ length: concurrency }, () => loop())); };

const started = Date.now();
await soak(Math.max(1, Math.floor(total / 10)));
const baseline = await settle();
// SOAK_SMAPS=PREFIX keeps the server's /proc/PID/smaps at both readings, to see what grew
if (process.env.SOAK_SMAPS) fs.writeFileSync(`${process.env.SOAK_SMAPS}-baseline`, fs.readFileSync(`/proc/${pid}/smaps`));
const mib = (kb) => (kb / 1024).toFixed(1);
console.log(`# after ${sent} warm-up requests, idle: RSS ${mib(baseline.rss_kb)} MiB (anonymous ${mib(baseline.anon_kb)} MiB), ${baseline.fds} descriptors, ${baseline.threads} threads`);
await soak(total);
const seconds = (Date.now() - started) / 1000;
const end = await settle();
if (process.env.SOAK_SMAPS) fs.writeFileSync(`${process.env.SOAK_SMAPS}-end`, fs.readFileSync(`/proc/${pid}/smaps`));
console.log(`# ${sent} requests in ${seconds.toFixed(1)} s (${(sent / seconds).toFixed(1)}/s), ${concurrency} at a time`);
console.log(`# at the end, idle: RSS ${mib(end.rss_kb)} MiB (anonymous ${mib(end.anon_kb)} MiB, ${(100 * (end.anon_kb - baseline.anon_kb) / baseline.anon_kb).toFixed(1)}%), ${end.fds} descriptors, ${end.threads} threads`);
for (const k of Object.keys(counts).sort()) console.log(`#   ${k}: ${counts[k]}`);
const ok = (cond, name) => console.log(`${cond ? 'ok' : 'not ok'} - ${name}`);
ok(problems.length === 0, `every reply had a status the API documents for its request${problems.length ? ': ' + problems.join('; ') : ''}`);
const health = await request('GET', '/health');
ok(health.status === 200, 'the server still answers /health');
// Anonymous RSS: the memory-mapped weights' resident pages depend on which tokens the last
// prompts used (and on unloads and loads), not on what the server holds.
// The tolerance is 5% or 2 MiB, whichever is more: on this ~12 MiB heap two idle readings
// differ by up to 1.3 MiB (headroomd keeps glibc at two malloc arenas; with one per connection
// thread the end was 2 to 8 MiB higher, all of it in arenas of threads that had ended), while a
// leak of a kilobyte a request shows as 2 MiB.
const allowed = Math.max(baseline.anon_kb * 0.05, 2048);
// Only growth is checked: a leak cannot shrink the heap, and a baseline read while an arena
// held more than usual makes the end look lower (measured: -2.0 MiB once).
if (checkRss) ok(end.anon_kb - baseline.anon_kb <= allowed, `anonymous RSS after the soak has grown by at most ${mib(allowed)} MiB (5% or 2 MiB) since the warm-up`);
else console.log('# RSS not compared: a sanitizer build (its quarantine and shadow memory grow by design)');
ok(end.fds === baseline.fds, `open descriptors back to the baseline (${baseline.fds} -> ${end.fds})`);
// at most: a connection thread still ending at the warm-up's reading can make the baseline one higher
ok(end.threads <= baseline.threads, `threads back to the baseline (${baseline.threads} -> ${end.threads})`);
console.log('# soak.mjs: every check ran');
