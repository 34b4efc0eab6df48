// expect.mjs: the shell tests' eye for JSON: evaluates a JavaScript condition over a saved HTTP
// body and exits 0 when it holds, 1 (with the body's start on stderr) when it does not.
// usage: node expect.mjs BODY_FILE 'CONDITION'
// The condition is an expression, or a function body when it holds `return`. It sees:
//   text, json (parsed, or undefined), lines (non-empty), ndjson (each line parsed),
//   sse (the `data:` payloads of an event stream, parsed; "[DONE]" stays a string),
//   load(name) (another saved body in the same folder, parsed), env (the environment),
//   now (seconds), near(a, b, slack), rfc3339(s), usageOk(usage, finish_reason, max_tokens),
//   metric('series{labels}') (a Prometheus value, NaN if absent), buckets('name') ([le, count]).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const [file, condition] = process.argv.slice(2);
const text = readFileSync(file, "utf8");
const lines = text.split("\n").filter((line) => line.trim() !== "");
const tryParse = (value) => {
    try {
        return JSON.parse(value);
    } catch {
        return undefined;
    }
};
const json = tryParse(text);
const ndjson = lines.map(tryParse);
const sse = lines.filter((line) => line.startsWith("data: ")).map((line) => {
    const payload = line.slice(6);
    return payload === "[DONE]" ? payload : tryParse(payload);
});
const helpers = {
    text, json, lines, ndjson, sse,
    load: (name) => {
        const saved = readFileSync(join(dirname(file), name), "utf8");
        return tryParse(saved) ?? saved;
    },
    env: process.env,
    now: Date.now() / 1000,
    near: (a, b, slack) => Math.abs(a - b) <= slack,
    rfc3339: (value) => typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value),
    // OpenAI's usage: whole numbers that add up; at "length" the completion is max_tokens long
    usageOk: (usage, finish, max) => Boolean(usage) && Number.isInteger(usage.prompt_tokens) &&
        usage.prompt_tokens > 0 && Number.isInteger(usage.completion_tokens) &&
        usage.total_tokens === usage.prompt_tokens + usage.completion_tokens &&
        (finish === "length" ? usage.completion_tokens === max : usage.completion_tokens <= max),
    metric: (series) => {
        const line = lines.find((l) => l.startsWith(series + " "));
        return line ? Number(line.slice(series.length + 1)) : NaN;
    },
    buckets: (name) => lines.filter((l) => l.startsWith(name + "_bucket{")).map((l) => {
        const match = l.match(/le="([^"]+)"\} (\S+)$/);
        return [match[1], Number(match[2])];
    }),
};

let holds = false, error = null;
try {
    const body = /\breturn\b/.test(condition) ? condition : `return (${condition});`;
    holds = Boolean(new Function(...Object.keys(helpers), body)(...Object.values(helpers)));
} catch (caught) {
    error = caught;
}
if (!holds) {
    console.error(`  expected: ${condition}${error ? `\n  threw: ${error.message}` : ""}`);
    console.error(`  body: ${text.slice(0, 600).replace(/\n/g, "\\n").replace(/\0/g, "\\0")}`);
    process.exit(1);
}
