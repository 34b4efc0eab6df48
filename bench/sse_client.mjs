// sse_client.mjs: one streamed completion, timed on the client side, for the bench/ scripts.
// usage: node bench/sse_client.mjs URL BODY_JSON        (or import { streamCompletion })
//
// Prints (resolves to) one JSON object:
//   ttft_s             request sent (just before the body is written) to the first chunk with text
//   decode_s           first to last chunk with text
//   chunks             chunks with text (a chunk can hold more than one token when a character
//                      is split across tokens)
//   completion_tokens  the server's usage figure (stream_options.include_usage), else chunks
//   tokens_per_second  (completion_tokens - 1) / decode_s: the first token is TTFT's, not decode's
//   started_ms, ended_ms  performance.now() at the request and at its end (for aggregates)
//   total_s, finish_reason, timings (llama-server's own, when it sends them), status, error
// A fresh connection per request (no agent), the same for both servers.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export function streamCompletion(url, body) {
    return new Promise((resolve) => {
        const result = { ttft_s: null, decode_s: null, chunks: 0, completion_tokens: null, tokens_per_second: null,
                         started_ms: null, ended_ms: null, total_s: null, finish_reason: null, timings: null,
                         status: null, error: null };
        let t0 = 0, tFirst = 0, tLast = 0, buffered = '', done = false;

        function finish() {
            if (done) return;
            done = true;
            result.ended_ms = performance.now();
            result.total_s = (result.ended_ms - t0) / 1000;
            if (tFirst) {
                result.ttft_s = (tFirst - t0) / 1000;
                result.decode_s = (tLast - tFirst) / 1000;
            }
            if (result.completion_tokens === null) result.completion_tokens = result.chunks;
            if (result.completion_tokens > 1 && result.decode_s > 0)
                result.tokens_per_second = (result.completion_tokens - 1) / result.decode_s;
            resolve(result);
        }

        function onEvent(data, now) {
            if (data === '[DONE]') return;
            let chunk;
            try { chunk = JSON.parse(data); } catch { result.error = `unparsable chunk: ${data.slice(0, 80)}`; return; }
            if (chunk.error) result.error = chunk.error.message || JSON.stringify(chunk.error);
            const choice = chunk.choices && chunk.choices[0];
            if (choice) {
                const text = choice.text ?? (choice.delta && choice.delta.content) ?? '';
                if (text.length > 0) {
                    if (!tFirst) tFirst = now;
                    tLast = now;
                    result.chunks++;
                }
                if (choice.finish_reason) result.finish_reason = choice.finish_reason;
            }
            if (chunk.usage && typeof chunk.usage.completion_tokens === 'number')
                result.completion_tokens = chunk.usage.completion_tokens;
            if (chunk.timings) result.timings = chunk.timings;
        }

        const request = http.request(url, {
            method: 'POST',
            agent: false,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        }, (response) => {
            result.status = response.statusCode;
            if (response.statusCode !== 200) result.error = `HTTP ${response.statusCode}`;
            response.setEncoding('utf8');
            response.on('data', (text) => {
                const now = performance.now();
                buffered += text;
                let end;
                while ((end = buffered.indexOf('\n\n')) >= 0) {
                    const event = buffered.slice(0, end);
                    buffered = buffered.slice(end + 2);
                    for (const line of event.split('\n'))
                        if (line.startsWith('data: ')) onEvent(line.slice(6), now);
                        else if (line.startsWith('{') && result.error) result.error += ` ${line.slice(0, 200)}`;
                }
            });
            response.on('end', () => {
                if (result.error && buffered.trim()) result.error += ` ${buffered.trim().slice(0, 200)}`;
                finish();
            });
            response.on('error', (e) => { result.error = String(e); finish(); });
        });
        request.on('error', (e) => { result.error = String(e); finish(); });
        t0 = performance.now();
        result.started_ms = t0;
        request.end(body);
    });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    process.stdout.on('error', () => {});   // the script may be gone (time limit)
    const [url, body] = process.argv.slice(2);
    if (!url || !body) {
        console.error('usage: node sse_client.mjs URL BODY_JSON');
        process.exit(2);
    }
    const result = await streamCompletion(url, body);
    process.stdout.write(JSON.stringify(result) + '\n');
}
