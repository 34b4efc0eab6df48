// tools.mjs: tool calls through the official openai and ollama clients, on a model made with
// headroom-mkmodel --template hermes (the Hermes/Qwen2.5 tools template, rendered by the model's
// own Jinja template). Random weights never choose a tool themselves, so the calls are asked for
// (tool_choice "required" or a named function), where the grammar makes them valid: the test
// checks the name, that the arguments parse and fit the schema, the round trip of a tool result,
// tool_choice "none", the streamed shape, and that bad tools are a 400 naming the field.
// usage: node tools.mjs BASE_URL API_KEY (run by test_clients.sh tools.mjs)
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ollama } from "ollama";

const [base, apiKey] = process.argv.slice(2);
let failures = 0;

async function check(name, body) {
    try {
        await body();
        console.log(`ok - ${name}`);
    } catch (error) {
        failures++;
        console.log(`not ok - ${name}`);
        console.log(String(error?.stack ?? error).split("\n").slice(0, 8).map((line) => `  ${line}`).join("\n"));
    }
}

const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
const ollama = new Ollama({ host: base, headers: { Authorization: `Bearer ${apiKey}` } });
const model = "tools";
// Arguments that can only be short, so the call is whole well within max_tokens.
const weather = {
    type: "function",
    function: {
        name: "get_weather", description: "The weather in a city",
        parameters: { type: "object", additionalProperties: false, required: ["city", "metric"],
                      properties: { city: { type: "string", enum: ["Paris", "Oslo", "Lima"] },
                                    metric: { type: "boolean" } } },
    },
};
const lookup = {
    type: "function",
    function: {
        name: "lookup", description: "A number by its key",
        parameters: { type: "object", additionalProperties: false, required: ["key"],
                      properties: { key: { type: "integer", minimum: 0, maximum: 9 } } },
    },
};
const messages = [{ role: "user", content: "What is the weather in Paris?" }];

function assertWeather(args) {
    const value = typeof args === "string" ? JSON.parse(args) : args;
    assert.deepEqual(Object.keys(value).sort(), ["city", "metric"], JSON.stringify(value));
    assert.ok(["Paris", "Oslo", "Lima"].includes(value.city), JSON.stringify(value));
    assert.equal(typeof value.metric, "boolean");
}

await check("openai: tool_choice required: one call of get_weather, arguments fit the schema, finish_reason tool_calls", async () => {
    const r = await openai.chat.completions.create({ model, messages, tools: [weather], tool_choice: "required",
                                                     parallel_tool_calls: false, max_tokens: 200, seed: 1 });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, "function");
    assert.match(call.id, /^call_/u);
    assert.equal(call.function.name, "get_weather");
    assertWeather(call.function.arguments);
});

await check("openai: a named function is the one called (both tools in the prompt)", async () => {
    const r = await openai.chat.completions.create({ model, messages, tools: [weather, lookup], parallel_tool_calls: false,
        tool_choice: { type: "function", function: { name: "lookup" } }, max_tokens: 200, seed: 2 });
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, "lookup");
    const args = JSON.parse(call.function.arguments);
    assert.ok(Number.isInteger(args.key) && args.key >= 0 && args.key <= 9, call.function.arguments);
});

await check("openai: streamed, delta.tool_calls carries index, id, type, name and the whole arguments", async () => {
    const stream = await openai.chat.completions.create({ model, messages, tools: [weather], tool_choice: "required",
        parallel_tool_calls: false, max_tokens: 200, seed: 3, stream: true });
    const calls = [];
    let finish = null, role = null, content = "";
    for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta ?? {};
        role = delta.role ?? role;
        content += delta.content ?? "";
        for (const call of delta.tool_calls ?? []) calls.push(call);
        finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(role, "assistant");
    assert.equal(finish, "tool_calls");
    assert.equal(content, "");
    assert.equal(calls.length, 1);
    assert.equal(calls[0].index, 0);
    assert.match(calls[0].id, /^call_/u);
    assert.equal(calls[0].type, "function");
    assert.equal(calls[0].function.name, "get_weather");
    assertWeather(calls[0].function.arguments);
});

await check("openai: the tool result round trip: assistant tool_calls and the tool message go into the next turn", async () => {
    const first = await openai.chat.completions.create({ model, messages, tools: [weather], tool_choice: "required",
                                                         parallel_tool_calls: false, max_tokens: 200, seed: 4 });
    const assistant = first.choices[0].message;
    const history = [...messages, assistant,
                     { role: "tool", tool_call_id: assistant.tool_calls[0].id, content: "{\"temperature\": 21}" }];
    const second = await openai.chat.completions.create({ model, messages: history, tools: [weather],
                                                          tool_choice: "none", max_tokens: 8, seed: 5 });
    assert.equal(second.choices[0].message.tool_calls, undefined);
    assert.equal(typeof second.choices[0].message.content, "string");
    // the history costs tokens: the call and the result are in the prompt
    assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens + 20,
              `${second.usage.prompt_tokens} prompt tokens after ${first.usage.prompt_tokens}`);
});

await check("openai: tool_choice none answers content only, streamed as it comes", async () => {
    const stream = await openai.chat.completions.create({ model, messages, tools: [weather], tool_choice: "none",
                                                          max_tokens: 16, seed: 6, stream: true });
    let chunks = 0, finish = null;
    for await (const chunk of stream) {
        assert.equal(chunk.choices[0]?.delta?.tool_calls, undefined);
        if (chunk.choices[0]?.delta?.content) chunks++;
        finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(chunks > 0, "content arrived");
    assert.ok(finish === "length" || finish === "stop", finish);
});

await check("openai: bad tools are BadRequestErrors naming the field", async () => {
    const bad = async (body, param, pattern) => assert.rejects(
        openai.chat.completions.create({ model, messages, max_tokens: 4, ...body }),
        (error) => error instanceof OpenAI.BadRequestError && error.param === param && pattern.test(error.message));
    await bad({ tools: { type: "function" } }, "tools", /array/u);
    await bad({ tools: [{ type: "function", function: { description: "no name" } }] }, "tools", /name/u);
    await bad({ tools: [{ type: "function", function: { name: "f", parameters: "object" } }] }, "tools", /parameters/u);
    await bad({ tools: [weather], tool_choice: { type: "function", function: { name: "nowhere" } } }, "tool_choice", /nowhere/u);
    await bad({ tools: [weather], tool_choice: "sometimes" }, "tool_choice", /sometimes/u);
    await bad({ tool_choice: "required" }, "tool_choice", /no tools/u);
});

await check("ollama: chat with tools: message.tool_calls with arguments as an object", async () => {
    const r = await ollama.chat({ model, messages, tools: [weather], tool_choice: "required",
                                  options: { num_predict: 200, seed: 1 }, stream: false });
    assert.equal(r.message.tool_calls.length >= 1, true, JSON.stringify(r.message));
    for (const call of r.message.tool_calls) {
        assert.equal(call.function.name, "get_weather");
        assertWeather(call.function.arguments);
    }
});

await check("ollama: streamed tool calls, and a tool message in the history", async () => {
    const stream = await ollama.chat({ model, messages, tools: [weather], tool_choice: "required",
                                       parallel_tool_calls: false, options: { num_predict: 200, seed: 2 }, stream: true });
    const calls = [];
    let done = false;
    for await (const part of stream) {
        for (const call of part.message?.tool_calls ?? []) calls.push(call);
        done = part.done || done;
    }
    assert.ok(done);
    assert.equal(calls.length, 1);
    assertWeather(calls[0].function.arguments);
    const r = await ollama.chat({ model, tools: [weather], options: { num_predict: 4 }, stream: false,
        messages: [...messages, { role: "assistant", content: "", tool_calls: calls },
                   { role: "tool", content: "21 C", tool_name: "get_weather" }] });
    assert.ok(r.prompt_eval_count > 0);
    assert.ok(r.done);
});

console.log("# tools.mjs: every check ran");
process.exit(failures === 0 ? 0 : 1);
