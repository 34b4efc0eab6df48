// fault_server.mjs MODE PORT_FILE: a fall-back server that misbehaves, for e2e.fault_fallback.
// It listens on a free loopback port and writes the port to PORT_FILE. MODE:
//   silent   accepts connections and never answers anything;
//   stalls   lists the model "mid" at GET /v1/models, then never answers a completion;
//   slow     lists "mid", then streams a completion of five words, one every 300 ms.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";

const [mode, portFile] = process.argv.slice(2);
const held = [];
const models = JSON.stringify({ object: "list", data: [{ id: "mid", object: "model", owned_by: "test" }] });
const words = ["Once", " upon", " a", " slow", " time"];

function chunk(response, body) { response.write(`data: ${JSON.stringify(body)}\n\n`); }

function completion(request, response) {
    response.writeHead(200, { "Content-Type": "text/event-stream" });
    let sent = 0;
    const timer = setInterval(() => {
        if (sent < words.length) {
            chunk(response, { object: "text_completion", choices: [{ index: 0, text: words[sent++], finish_reason: null }] });
            return;
        }
        clearInterval(timer);
        chunk(response, { object: "text_completion", choices: [{ index: 0, text: "", finish_reason: "length" }],
                          usage: { prompt_tokens: 4, completion_tokens: words.length, total_tokens: 4 + words.length } });
        response.end("data: [DONE]\n\n");
    }, 300);
    response.on("close", () => clearInterval(timer));   // the request's own "close" comes when its body is read
}

const server = mode === "silent"
    ? net.createServer(socket => { held.push(socket); socket.on("error", () => {}); })
    : http.createServer((request, response) => {
        request.resume();
        if (request.method === "GET" && request.url === "/v1/models") {
            response.writeHead(200, { "Content-Type": "application/json" });
            response.end(models);
        } else if (request.method === "POST" && request.url === "/v1/completions") {
            request.on("end", () => (mode === "slow" ? completion(request, response) : held.push(response)));
        } else {
            response.writeHead(404);
            response.end();
        }
    });
server.listen(0, "127.0.0.1", () => fs.writeFileSync(portFile, String(server.address().port)));
