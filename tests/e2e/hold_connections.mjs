// hold_connections.mjs HOST PORT COUNT: opens COUNT TCP connections to HOST:PORT one after another,
// sends nothing, and after 2 s prints a JSON list of which are still open ("open") and which the
// server closed ("closed"); then closes those that are open, one by one as a line "close" on stdin
// asks, and a line "probe" opens one more and prints whether it stays open 2 s.
import net from "node:net";
import readline from "node:readline";

const [host, port, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const sockets = [], states = [];
function open(index) {
    return new Promise((resolve) => {
        const socket = net.connect({ host, port }, () => resolve());
        states[index] = "open";
        socket.on("close", () => { states[index] = "closed"; });
        socket.on("error", () => { states[index] = "closed"; resolve(); });
        sockets[index] = socket;
    });
}
for (let i = 0; i < count; i++) await open(i);
await new Promise((r) => setTimeout(r, 2000));
console.log(JSON.stringify(states.slice()));
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
    if (line === "close") {
        const index = states.indexOf("open");
        sockets[index].destroy();
        await new Promise((r) => setTimeout(r, 500));
        console.log("closed one");
    } else if (line === "probe") {
        const index = sockets.length;
        await open(index);
        await new Promise((r) => setTimeout(r, 2000));
        console.log(states[index]);
    }
}
for (const socket of sockets) socket.destroy();
