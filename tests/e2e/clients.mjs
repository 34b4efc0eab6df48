// clients.mjs: headroomd through the official JavaScript clients, as applications use it: the
// openai package (completions and chat, whole and streamed, errors as the SDK's classes, a
// stream the client aborts) and the ollama package (generate, chat, list, ps, keep_alive, abort).
// usage: node clients.mjs BASE_URL API_KEY
// Run by test_clients.sh from the build folder that holds node_modules; prints one "ok - ..." or
// "not ok - ..." line per check (the script counts them) and exits 1 when one failed.
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ollama } from "ollama";

const [base, apiKey] = process.argv.slice(2);
const auth = { Authorization: `Bearer ${apiKey}` };
let failures = 0;

async function check(name, body) {
    try {
        await body();
        console.log(`ok - ${name}`);
    } catch (error) {
        failures++;
        console.log(`not ok - ${name}`);
        console.log(String(error?.stack ?? error).split("\n").slice(0, 6).map((line) => `  ${line}`).join("\n"));
    }
}

async function server(path) {
    const response = await fetch(base + path, { headers: auth });
    assert.equal(response.status, 200, `GET ${path}`);
    return response.json();
}

// A client that goes away must not leave the model generating: /api/active empties and the
// newest record says cancelled.
async function assertStopped(client, maxTokens) {
    const deadline = Date.now() + 5000;
    while ((await server("/api/active")).length > 0) {
        assert.ok(Date.now() < deadline, "still generating 5 s after the client aborted");
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let record;
    for (let i = 0; i < 60; i++) {   // the worker writes the record as it lets go of the session
        record = (await server("/api/generations")).at(-1);
        if (record?.client === client && record.cancelled) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(record.client, client);
    assert.equal(record.cancelled, true, "the record says cancelled");
    assert.ok(record.generated_tokens < maxTokens, `${record.generated_tokens} tokens, fewer than ${maxTokens}`);
}

function assertUsage(usage, finishReason, maxTokens) {
    assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, "prompt_tokens");
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, "total = prompt + completion");
    if (finishReason === "length") assert.equal(usage.completion_tokens, maxTokens, "completion = max_tokens at length");
    else assert.ok(usage.completion_tokens <= maxTokens);
}

// ---- openai ----------------------------------------------------------------------------------
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 30000 });
const prompt = "Once upon a time";
const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Say hello" }];
let completionText = "", chatText = "";

await check("openai: models.list() has tiny, models.retrieve() gives it", async () => {
    const ids = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    assert.deepEqual(ids, ["tiny"]);
    const one = await openai.models.retrieve("tiny");
    assert.equal(one.id, "tiny");
    assert.equal(one.object, "model");
    await assert.rejects(openai.models.retrieve("nope"), (error) => error instanceof OpenAI.NotFoundError);
});

await check("openai: completions.create: text, finish_reason, usage", async () => {
    const r = await openai.completions.create({ model: "tiny", prompt, max_tokens: 8, temperature: 0 });
    assert.equal(r.object, "text_completion");
    assert.equal(r.model, "tiny");
    assert.equal(r.choices.length, 1);
    assert.ok(typeof r.choices[0].text === "string" && r.choices[0].text.length > 0);
    assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
    assertUsage(r.usage, r.choices[0].finish_reason, 8);
    completionText = r.choices[0].text;
});

await check("openai: completions.create streamed, include_usage: the same text and a usage chunk", async () => {
    const stream = await openai.completions.create({
        model: "tiny", prompt, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
        chunks++;
        if (chunk.choices.length > 0) {
            text += chunk.choices[0].text;
            finish = chunk.choices[0].finish_reason ?? finish;
        }
        if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(chunks >= 3, `${chunks} chunks`);
    assert.equal(text, completionText);
    assert.ok(["stop", "length"].includes(finish));
    assert.ok(usage, "a usage chunk");
    assertUsage(usage, finish, 8);
});

await check("openai: chat.completions.create: an assistant message, usage", async () => {
    const r = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 8, temperature: 0 });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0].message.role, "assistant");
    assert.ok(typeof r.choices[0].message.content === "string" && r.choices[0].message.content.length > 0);
    assertUsage(r.usage, r.choices[0].finish_reason, 8);
    chatText = r.choices[0].message.content;
});

await check("openai: chat.completions.create streamed: role, deltas adding up to the same reply, usage", async () => {
    const stream = await openai.chat.completions.create({
        model: "tiny", messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = "", role = null, finish = null, usage = null;
    for await (const chunk of stream) {
        if (chunk.choices.length > 0) {
            role ??= chunk.choices[0].delta.role ?? null;
            text += chunk.choices[0].delta.content ?? "";
            finish = chunk.choices[0].finish_reason ?? finish;
        }
        if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(role, "assistant");
    assert.equal(text, chatText);
    assertUsage(usage, finish, 8);
});

await check("openai: an unknown model is a NotFoundError (404) that says so", async () => {
    await assert.rejects(openai.completions.create({ model: "nope", prompt, max_tokens: 4 }), (error) => {
        assert.ok(error instanceof OpenAI.NotFoundError, error.constructor.name);
        assert.equal(error.status, 404);
        assert.match(error.message, /model 'nope' not found/);
        return true;
    });
});

await check("openai: max_tokens 100000 is a BadRequestError (400) naming the parameter", async () => {
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages, max_tokens: 100000 }), (error) => {
        assert.ok(error instanceof OpenAI.BadRequestError, error.constructor.name);
        assert.equal(error.status, 400);
        assert.equal(error.param, "max_tokens");
        assert.match(error.message, /'max_tokens' must be between 1 and 8192/);
        return true;
    });
});

await check("openai: a wrong API key is an AuthenticationError (401)", async () => {
    const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (error) => error instanceof OpenAI.AuthenticationError && error.status === 401);
});

await check("openai: a stream the client aborts after its first chunk stops the generation", async () => {
    const stream = await openai.completions.create({ model: "tiny", prompt: "Tell me everything", max_tokens: 3000, stream: true });
    for await (const chunk of stream) {
        assert.equal(typeof chunk.choices[0].text, "string");
        stream.controller.abort();
        break;
    }
    await assertStopped("openai", 3000);
});

// ---- ollama ----------------------------------------------------------------------------------
const ollama = new Ollama({ host: base, headers: auth });

await check("ollama: list() has tiny with its size", async () => {
    const { models } = await ollama.list();
    assert.equal(models.length, 1);
    assert.equal(models[0].name, "tiny");
    assert.ok(models[0].size > 0);
});

await check("ollama: generate(): the whole response with counters; same text as openai at temperature 0", async () => {
    const r = await ollama.generate({ model: "tiny", prompt, options: { num_predict: 8, temperature: 0 } });
    assert.equal(r.done, true);
    assert.equal(r.model, "tiny");
    assert.equal(r.response, completionText);
    assert.ok(r.prompt_eval_count > 0);
    if (r.done_reason === "length") assert.equal(r.eval_count, 8);
    assert.ok(r.total_duration > 0);
});

await check("ollama: generate({stream: true}): parts adding up, a final done part", async () => {
    const stream = await ollama.generate({ model: "tiny", prompt, options: { num_predict: 8, temperature: 0 }, stream: true });
    let text = "", last = null;
    for await (const part of stream) {
        text += part.response;
        last = part;
    }
    assert.equal(text, completionText);
    assert.equal(last.done, true);
    assert.ok(last.eval_count > 0 && last.prompt_eval_count > 0);
});

await check("ollama: chat(): an assistant message; same reply as openai's chat", async () => {
    const r = await ollama.chat({ model: "tiny", messages, options: { num_predict: 8, temperature: 0 } });
    assert.equal(r.message.role, "assistant");
    assert.equal(r.message.content, chatText);
    assert.ok(r.eval_count > 0);
});

await check("ollama: chat({stream: true}): message parts adding up", async () => {
    const stream = await ollama.chat({ model: "tiny", messages, options: { num_predict: 8, temperature: 0 }, stream: true });
    let text = "", last = null;
    for await (const part of stream) {
        text += part.message.content;
        last = part;
    }
    assert.equal(text, chatText);
    assert.equal(last.done, true);
});

await check("ollama: ps(): tiny with size, size_vram and a future expires_at", async () => {
    const { models } = await ollama.ps();
    assert.equal(models.length, 1);
    assert.equal(models[0].name, "tiny");
    assert.ok(models[0].size > 0);
    assert.ok(Number.isFinite(models[0].size_vram) && models[0].size_vram >= 0);
    assert.ok(new Date(models[0].expires_at).getTime() > Date.now());
});

await check("ollama: an unknown model is a ResponseError with status 404", async () => {
    await assert.rejects(ollama.generate({ model: "nope", prompt }), (error) => {
        assert.equal(error.name, "ResponseError");
        assert.equal(error.status_code, 404);
        assert.match(error.error, /model 'nope' not found/);
        return true;
    });
});

await check("ollama: a wrong API key is a ResponseError with status 401", async () => {
    const wrong = new Ollama({ host: base, headers: { Authorization: "Bearer wrong" } });
    await assert.rejects(wrong.list(), (error) => error.name === "ResponseError" && error.status_code === 401);
});

await check("ollama: abort() after the first part stops the generation", async () => {
    const stream = await ollama.generate({ model: "tiny", prompt: "Tell me everything", options: { num_predict: 3000 }, stream: true });
    await assert.rejects(async () => {
        for await (const part of stream) {
            assert.equal(part.done, false);
            ollama.abort();
        }
    }, (error) => error.name === "AbortError");
    await assertStopped("ollama", 3000);
});

await check("ollama: generate() with keep_alive 0 and no prompt unloads the model (ps() empty)", async () => {
    const r = await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0 });
    assert.equal(r.done_reason, "unload");
    assert.deepEqual((await ollama.ps()).models, []);
});

// ---- stop sequences: greedy text, then a stop taken from its middle must cut it there ----
const stopPrompt = "Once upon a time";
const full = (await openai.completions.create({ model: "tiny", prompt: stopPrompt, max_tokens: 24, temperature: 0 })).choices[0].text;
// a stop of 3 characters from the middle (spanning pieces, most likely), and one that never comes
const stopText = [...full].slice(4, 7).join("");
const cut = full.slice(0, full.indexOf(stopText));
console.log(`# stop test: greedy text ${JSON.stringify(full)}, stop ${JSON.stringify(stopText)}`);

await check("openai: completions.create({stop}): the text ends before the stop, finish_reason stop", async () => {
    assert.ok(stopText.length > 0, `greedy text too short: ${JSON.stringify(full)}`);
    const r = await openai.completions.create({
        model: "tiny", prompt: stopPrompt, max_tokens: 24, temperature: 0, stop: ["\u2603never", stopText],
    });
    assert.equal(r.choices[0].text, cut);
    assert.equal(r.choices[0].finish_reason, "stop");
});

await check("openai: completions.create({stop, stream}): chunks add up to the cut text, never the stop", async () => {
    const stream = await openai.completions.create({
        model: "tiny", prompt: stopPrompt, max_tokens: 24, temperature: 0, stop: stopText, stream: true,
    });
    let text = "", finish = null;
    for await (const chunk of stream) {
        text += chunk.choices[0]?.text ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, cut);
    assert.equal(finish, "stop");
});

await check("openai: a stop that never appears changes nothing (held prefixes are emitted)", async () => {
    const r = await openai.completions.create({
        model: "tiny", prompt: stopPrompt, max_tokens: 24, temperature: 0, stop: [full + "x"],
    });
    assert.equal(r.choices[0].text, full);
    assert.equal(r.choices[0].finish_reason, "length");
});

await check("ollama: generate({options.stop}) whole and streamed: cut before the stop, done_reason stop", async () => {
    const r = await ollama.generate({ model: "tiny", prompt: stopPrompt, options: { num_predict: 24, temperature: 0, stop: [stopText] } });
    assert.equal(r.response, cut);
    assert.equal(r.done_reason, "stop");
    const stream = await ollama.generate({ model: "tiny", prompt: stopPrompt, options: { num_predict: 24, temperature: 0, stop: [stopText] }, stream: true });
    let text = "", last = null;
    for await (const part of stream) { text += part.response; last = part; }
    assert.equal(text, cut);
    assert.equal(last.done_reason, "stop");
});

await check("openai: a bad stop is a BadRequestError naming 'stop'", async () => {
    await assert.rejects(openai.completions.create({ model: "tiny", prompt: "x", stop: [1] }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "stop");
    await assert.rejects(openai.completions.create({ model: "tiny", prompt: "x", stop: Array(17).fill("a") }),
        (error) => error instanceof OpenAI.BadRequestError && /at most 16/.test(error.message));
});

// ---- the sampling set: every field is taken (a refused one would throw), seeds reproduce ----
await check("openai: the sampling set with a seed gives the same text twice", async () => {
    const ask = () => openai.completions.create({
        model: "tiny", prompt: "Roses are", max_tokens: 12, temperature: 0.9, seed: 7, top_p: 0.9,
        presence_penalty: 0.5, frequency_penalty: 0.3, top_k: 20, min_p: 0.01, typical_p: 0.95,
        repeat_penalty: 1.1, repeat_last_n: 32,
    });
    const [a, b] = [await ask(), await ask()];
    assert.equal(a.choices[0].text, b.choices[0].text);
    assert.equal(a.usage.completion_tokens, 12);
});

await check("openai: logit_bias +100 on one token makes greedy decoding repeat it", async () => {
    const r = await openai.completions.create({ model: "tiny", prompt: "Roses are", max_tokens: 3, temperature: 0, logit_bias: { 300: 100 } });
    assert.match(r.choices[0].text, /^(.+)\1\1$/su);
    const banned = await openai.completions.create({ model: "tiny", prompt: "Roses are", max_tokens: 3, temperature: 0, logit_bias: { 300: -100 } });
    assert.doesNotMatch(banned.choices[0].text, new RegExp(`^(${r.choices[0].text.slice(0, r.choices[0].text.length / 3).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})`, "u"));
});

// ---- log-probabilities: real values, greedy picks the most likely ------------------------------
await check("openai: chat logprobs with top_logprobs: one entry per token, greedy's choice is the top one", async () => {
    const r = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0,
                                                     logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    for (const t of content) {
        assert.ok(t.logprob <= 0 && Number.isFinite(t.logprob));
        assert.equal(t.top_logprobs.length, 3);
        assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob && t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
        assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6, "greedy takes the most likely token");
        assert.ok(t.top_logprobs.reduce((sum, x) => sum + Math.exp(x.logprob), 0) <= 1 + 1e-6);
    }
    // the tokens' bytes make the text
    const bytes = Buffer.from(content.flatMap((t) => t.bytes));
    if (r.choices[0].finish_reason === "length") assert.equal(bytes.toString("utf8"), r.choices[0].message.content);
    // sampled: the chosen token is among all tokens, its logprob the model's, not necessarily the top
    const sampled = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 1.5, seed: 3,
                                                           logprobs: true });
    assert.equal(sampled.choices[0].logprobs.content.length, sampled.usage.completion_tokens);
    assert.ok(sampled.choices[0].logprobs.content.every((t) => t.top_logprobs.length === 0 && t.logprob <= 0));
});

await check("openai: completions logprobs N, whole and streamed: tokens, token_logprobs, top_logprobs, text_offset", async () => {
    const r = await openai.completions.create({ model: "tiny", prompt, max_tokens: 10, temperature: 0, logprobs: 2 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, r.usage.completion_tokens);
    assert.equal(lp.token_logprobs.length, lp.tokens.length);
    assert.ok(lp.top_logprobs.every((alternatives) => Object.keys(alternatives).length >= 1 && Object.keys(alternatives).length <= 2));
    assert.equal(lp.text_offset[0], 0);
    assert.ok(lp.text_offset.every((offset, i) => i === 0 || offset >= lp.text_offset[i - 1]));
    const stream = await openai.completions.create({ model: "tiny", prompt, max_tokens: 10, temperature: 0, logprobs: 2, stream: true });
    const streamed = [];
    for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.token_logprobs ?? []));
    assert.deepEqual(streamed, lp.token_logprobs);
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages, top_logprobs: 2 }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "top_logprobs");
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages, logprobs: true, top_logprobs: 21 }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "top_logprobs");
});

// tools themselves: tools.mjs (a model with a tools template)
await check("openai: tools that are not a list are a BadRequestError naming the field", async () => {
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages,
        tools: { type: "function", function: { name: "f", parameters: { type: "object" } } } }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "tools");
});

// ---- structured output: llama.cpp's grammar sampler; random weights still obey it ----------
// A schema that admits only short objects, so that the answer is whole well within max_tokens.
const pointSchema = {
    type: "object", additionalProperties: false, required: ["ok", "n", "tag"],
    properties: { ok: { type: "boolean" }, n: { type: "integer", minimum: 0, maximum: 99 },
                  tag: { type: "string", enum: ["red", "green", "blue"] } },
};
function assertPoint(text) {
    const value = JSON.parse(text);
    assert.deepEqual(Object.keys(value).sort(), ["n", "ok", "tag"], text);
    assert.equal(typeof value.ok, "boolean");
    assert.ok(Number.isInteger(value.n) && value.n >= 0 && value.n <= 99, text);
    assert.ok(["red", "green", "blue"].includes(value.tag), text);
}

await check("openai: chat response_format json_schema: the content parses and fits the schema, whole and streamed", async () => {
    const response_format = { type: "json_schema", json_schema: { name: "point", strict: true, schema: pointSchema } };
    for (const seed of [1, 2, 3]) {
        const r = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 200, temperature: 1, seed, response_format });
        assert.equal(r.choices[0].finish_reason, "stop");
        assertPoint(r.choices[0].message.content);
    }
    const stream = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 200, seed: 9, response_format, stream: true });
    let text = "", finish = null;
    for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, "stop");
    assertPoint(text);
});

await check("openai: response_format json_object: a JSON object, or cut by max_tokens (finish_reason length)", async () => {
    let whole = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
        const r = await openai.chat.completions.create({ model: "tiny", messages, max_tokens: 64, temperature: 1, seed,
                                                         response_format: { type: "json_object" } });
        const text = r.choices[0].message.content;
        assert.match(text, /^\{/u, "an object begins");
        if (r.choices[0].finish_reason === "stop") {
            const value = JSON.parse(text);
            assert.ok(value !== null && typeof value === "object" && !Array.isArray(value), text);
            whole++;
        } else {
            assert.equal(r.choices[0].finish_reason, "length");
            assert.equal(r.usage.completion_tokens, 64);
        }
    }
    console.log(`# json_object: ${whole} of 6 answers whole within 64 tokens`);
});

await check("openai: a schema the converter cannot read is a BadRequestError naming response_format", async () => {
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages,
        response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "bogus" } } } }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "response_format" && /bogus/.test(error.message));
    await assert.rejects(openai.chat.completions.create({ model: "tiny", messages, response_format: { type: "yaml" } }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "response_format");
});

await check("ollama: chat format schema and generate format json: JSON that parses", async () => {
    const r = await ollama.chat({ model: "tiny", messages, format: pointSchema, options: { num_predict: 200, seed: 4, temperature: 1 } });
    assert.equal(r.done_reason, "stop");
    assertPoint(r.message.content);
    const stream = await ollama.generate({ model: "tiny", prompt: "Give JSON", format: pointSchema, stream: true,
                                           options: { num_predict: 200, seed: 5 } });
    let text = "", last;
    for await (const part of stream) { text += part.response; last = part; }
    assert.equal(last.done_reason, "stop");
    assertPoint(text);
    const g = await ollama.generate({ model: "tiny", prompt: "Give JSON", format: "json", options: { num_predict: 64, seed: 6 } });
    assert.match(g.response, /^\{/u);
    if (g.done_reason === "stop") assert.equal(typeof JSON.parse(g.response), "object");
    else assert.equal(g.done_reason, "length");
});

await check("ollama: mirostat 2 and the penalties with a seed give the same text twice", async () => {
    const options = { num_predict: 12, temperature: 0.8, seed: 3, mirostat: 2, mirostat_tau: 4, mirostat_eta: 0.2,
                      repeat_penalty: 1.2, repeat_last_n: -1, presence_penalty: 0.2, frequency_penalty: 0.2, typical_p: 0.9 };
    const a = await ollama.generate({ model: "tiny", prompt: "Roses are", options });
    const b = await ollama.generate({ model: "tiny", prompt: "Roses are", options });
    assert.equal(a.response, b.response);
    assert.equal(a.eval_count, 12);
});

await check("ollama: format \"xml\" is a ResponseError 400 that names 'format'", async () => {
    await assert.rejects(ollama.generate({ model: "tiny", prompt: "x", format: "xml" }),
        (error) => error.name === "ResponseError" && error.status_code === 400 && /'format' must be/.test(error.error));
});

// ---- embeddings ------------------------------------------------------------------------------
const norm = (v) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
const cosine = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0) / (norm(a) * norm(b));

await check("openai: embeddings.create (base64, the SDK's default): unit vectors, one per input, usage", async () => {
    const r = await openai.embeddings.create({ model: "tiny", input: ["hello world", "the sea is blue", "hello world"] });
    assert.equal(r.object, "list");
    assert.equal(r.model, "tiny");
    assert.deepEqual(r.data.map((d) => d.index), [0, 1, 2]);
    for (const d of r.data) {
        assert.equal(d.object, "embedding");
        assert.equal(d.embedding.length, 64);
        assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-4, `norm ${norm(d.embedding)}`);
    }
    assert.deepEqual(r.data[0].embedding, r.data[2].embedding, "the same text, the same vector");
    assert.ok(cosine(r.data[0].embedding, r.data[1].embedding) < 0.9999, "different texts differ");
    assert.ok(r.usage.prompt_tokens >= 6 && r.usage.total_tokens === r.usage.prompt_tokens);
    // the float encoding carries the same numbers
    const f = await openai.embeddings.create({ model: "tiny", input: "hello world", encoding_format: "float" });
    assert.equal(f.data.length, 1);
    f.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - r.data[0].embedding[i]) < 1e-6));
});

await check("openai: embeddings of token ids, a wrong dimensions or an empty input are BadRequestErrors naming the field", async () => {
    await assert.rejects(openai.embeddings.create({ model: "tiny", input: [[1, 2, 3]] }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "input");
    await assert.rejects(openai.embeddings.create({ model: "tiny", input: "x", dimensions: 32 }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "dimensions");
    await assert.rejects(openai.embeddings.create({ model: "tiny", input: [] }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === "input");
});

await check("ollama: embed() gives unit vectors like openai's; embeddings() the same direction, unnormalized", async () => {
    const r = await ollama.embed({ model: "tiny", input: ["hello world", "the sea is blue"] });
    assert.equal(r.embeddings.length, 2);
    assert.ok(Math.abs(norm(r.embeddings[0]) - 1) < 1e-4);
    assert.ok(r.prompt_eval_count >= 6 && r.total_duration > 0 && r.load_duration >= 0);
    const o = await openai.embeddings.create({ model: "tiny", input: "hello world", encoding_format: "float" });
    r.embeddings[0].forEach((x, i) => assert.ok(Math.abs(x - o.data[0].embedding[i]) < 1e-6));
    const legacy = await ollama.embeddings({ model: "tiny", prompt: "hello world" });
    assert.equal(legacy.embedding.length, 64);
    assert.ok(cosine(legacy.embedding, r.embeddings[0]) > 0.9999);
});

// ---- Ollama's model API ------------------------------------------------------------------------
await check("ollama: show(): template, parameters, details and model_info from the GGUF header", async () => {
    const r = await ollama.show({ model: "tiny" });
    assert.match(r.template, /\[INST\]/u, "the model's own chat template");
    assert.match(r.modelfile, /^# Modelfile generated by headroomd\nFROM .*tiny\.gguf\n/u);
    assert.match(r.parameters, /^num_ctx 8192$/mu);
    assert.equal(r.details.format, "gguf");
    assert.equal(r.details.family, "llama");
    assert.deepEqual(r.details.families, ["llama"]);
    assert.equal(r.details.quantization_level, "Q8_0");
    assert.match(r.details.parameter_size, /^\d+(\.\d)?M$/u);
    assert.equal(r.model_info["general.architecture"], "llama");
    assert.equal(r.model_info["llama.context_length"], 512);
    assert.equal(r.model_info["llama.embedding_length"], 64);
    assert.ok(r.model_info["general.parameter_count"] > 1e6);
    assert.ok(r.capabilities.includes("completion"));
    const list = await ollama.list();
    assert.equal(list.models[0].details.family, "llama");
    assert.equal(list.models[0].details.parameter_size, r.details.parameter_size);
    await assert.rejects(ollama.show({ model: "nope" }), (error) => error.status_code === 404);
});

await check("ollama: load_duration is the load: more than 0 right after an unload, less once loaded", async () => {
    await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0 });
    const cold = await ollama.generate({ model: "tiny", prompt: "Hi", options: { num_predict: 2 } });
    const warm = await ollama.generate({ model: "tiny", prompt: "Hi", options: { num_predict: 2 } });
    assert.ok(cold.load_duration > 0, `cold ${cold.load_duration}`);
    assert.ok(warm.load_duration < cold.load_duration, `warm ${warm.load_duration} < cold ${cold.load_duration}`);
    assert.ok(cold.total_duration >= cold.load_duration + cold.eval_duration);
});

console.log("# clients.mjs: every check ran");
process.exit(failures === 0 ? 0 : 1);
