// A subscriber on the JS client (clients/js/wsbroker.js) for tests/deploy:
// connects to argv[2], subscribes to argv[3], and prints one JSON line per
// event on stdout: {"ev":"open","node":…}, {"ev":"subscribed"},
// {"ev":"message","topic":…,"data":…}, {"ev":"disconnect",…}. It runs until
// stdin closes (the test holds the pipe; closing it ends the script).
//
// Node 20 has no global WebSocket: `ws` comes from clients/js/node_modules
// (`make deps-npm`).
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const clientDir = path.resolve(here, "../../clients/js");
const { connect } = await import(pathToFileURL(path.join(clientDir, "wsbroker.js")).href);
const WebSocket = globalThis.WebSocket ?? createRequire(path.join(clientDir, "package.json"))("ws");

const [url, pattern] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Reconnect quickly: the test bounds how long the move to a survivor may take.
const client = connect(url, { WebSocket, reconnect: { minDelay: 100, maxDelay: 1000 } });
client.on("open", (welcome) => out({ ev: "open", node: welcome.node_id }));
client.on("disconnect", (d) => out({ ev: "disconnect", code: d.code, reconnectIn: d.reconnectIn }));
client.on("error", (e) => out({ ev: "error", message: String(e?.message ?? e) }));
const sub = client.subscribe(pattern, (m) => out({ ev: "message", topic: m.topic, data: m.data }));
sub.on("subscribed", () => out({ ev: "subscribed" }));

process.stdin.resume();
process.stdin.on("end", () => {
    client.close();
    process.exit(0);
});
