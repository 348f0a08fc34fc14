// The Node examples of README.md and clients/js/README.md, run as written
// against the real broker (only the port changes: the test's broker listens on
// a free port, not 8080), and the client on a global WebSocket (Node 22's, or
// Node 20's behind --experimental-websocket) without one passed in.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { connect } from "../wsbroker.js";
import { clientDir, repoRoot, startBroker, waitFor, within } from "./helpers.js";

/** The code blocks of README.md's "## Clients" section. */
function clientBlocks() {
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
    const section = readme.split("\n## Clients\n")[1].split("\n## ")[0];
    return [...section.matchAll(/```([a-z]*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], code: m[2] }));
}

async function metric(broker, name) {
    const text = await (await fetch(`${broker.httpUrl}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? NaN : Number(line.split(" ")[1]);
}

/** Runs `argv` in the background; resolves with its stdout lines, killed by PID at the end. */
function background(argv, cwd) {
    const child = spawn(argv[0], argv.slice(1), { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const run = { child, out: "", err: "" };
    child.stdout.on("data", (d) => (run.out += d));
    child.stderr.on("data", (d) => (run.err += d));
    run.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    run.stop = async () => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, "SIGTERM");
        return run.exited;
    };
    return run;
}

/** Runs `argv` in the background against a fresh broker: `check(broker, run)`, then
 * the process is stopped by PID and the broker stopped and removed. */
async function withBackground(argv, cwd, check) {
    const broker = await startBroker();
    const run = background(typeof argv === "function" ? argv(broker) : argv, cwd);
    try {
        await check(broker, run);
    } finally {
        await run.stop();
        await broker.stop();
        broker.cleanup();
    }
}

test("README.md's Node example works as written: it prints each message published", async () => {
    const node = clientBlocks().find((b) => b.lang === "sh" && b.code.includes("node --input-type=module"));
    assert.ok(node, "no Node example in README.md's Clients section");
    assert.match(node.code, /^cd clients\/js && node --input-type=module -e '/);
    assert.match(node.code, /ws:\/\/127\.0\.0\.1:8080\/ws/);
    const cmd = (broker) => ["bash", "-c", node.code.replaceAll("127.0.0.1:8080", `127.0.0.1:${broker.port}`)];
    await withBackground(cmd, repoRoot, async (broker, run) => {
        await waitFor(async () => (await metric(broker, "wsbroker_subscriptions")) === 1, 10000, "the example's subscription");
        assert.equal((await broker.publish({ topic: "demo.hello", data: { text: "hi" } })).status, 200);
        assert.equal((await broker.publish({ topic: "demo.count", data: 3 })).status, 200);
        await waitFor(() => run.out.split("\n").length > 2, 10000, "two printed lines");
        assert.deepEqual(run.out.split("\n").slice(0, 2), ['demo.hello 1 {"text":"hi"}', "demo.count 1 3"]);
        assert.equal(run.err, "");
    });
});

test("README.md's Node example imports only what `make run` installs", () => {
    const node = clientBlocks().find((b) => b.lang === "sh" && b.code.includes("node --input-type=module"));
    const imports = [...node.code.matchAll(/from "([^"]+)"/g)].map((m) => m[1]).filter((m) => !m.startsWith("."));
    assert.ok(imports.length > 0, "the example imports no package: update this test");
    const pkg = JSON.parse(fs.readFileSync(path.join(clientDir, "package.json"), "utf8"));
    for (const name of imports) assert.ok(pkg.devDependencies?.[name], `${name} is not a dev dependency`);
    // `make run` depends on deps-npm, which runs npm ci for those dev dependencies.
    const makefile = fs.readFileSync(path.join(repoRoot, "Makefile"), "utf8");
    const run = makefile.match(/^run:(.*)$/m);
    assert.ok(run && run[1].split(/\s+/).includes("deps-npm"), `make run does not install the npm packages: ${run?.[0]}`);
    assert.match(makefile, /^\$\(NPM_STAMP\):[^\n]*\n(?:\t[^\n]*\n)*\t@?npm ci --prefix clients\/js/m);
});

test("on a global WebSocket (Node 22, or Node 20 with --experimental-websocket) no implementation is passed", async () => {
    const flags = globalThis.WebSocket ? [] : ["--experimental-websocket", "--no-warnings"];
    if (flags.length > 0 && !process.allowedNodeEnvironmentFlags.has(flags[0])) {
        // Node 18 has no WebSocket of its own: connect() says what to pass.
        assert.throws(() => connect("ws://127.0.0.1:1/ws"), (err) => err instanceof TypeError && /on Node < 22 pass one/.test(err.message));
        return;
    }
    const script = (port) => `
import { connect } from "./wsbroker.js";
if (typeof WebSocket !== "function") throw new Error("no global WebSocket");
const c = connect("ws://127.0.0.1:${port}/ws");
let received;
const got = new Promise((resolve) => (received = resolve));
const s = c.subscribe("g.>", (m) => received(m));
await s.ready;
const ack = await c.publish("g.one", { n: 1 });
const m = await got;
console.log("ack", ack.seq, m.topic, m.seq, JSON.stringify(m.data));
await c.close();
`;
    const argv = (broker) => [process.execPath, ...flags, "--input-type=module", "-e", script(broker.port)];
    await withBackground(argv, clientDir, async (broker, run) => {
        const { code } = await run.exited;
        assert.equal(code, 0, run.err);
        assert.equal(run.out, 'ack 1 g.one 1 {"n":1}\n');
    });
});

test("clients/js/README.md's Node example works as written, installed as the package", async () => {
    const readme = fs.readFileSync(path.join(clientDir, "README.md"), "utf8");
    const section = readme.split("\n## Node\n")[1].split("\n## ")[0];
    const example = section.match(/```js\n([\s\S]*?)```/)[1];
    assert.match(example, /from "wsbroker-client"/);
    // An app folder with the package (and ws) installed, as npm would.
    const app = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-readme-"));
    fs.mkdirSync(path.join(app, "node_modules"));
    fs.symlinkSync(clientDir, path.join(app, "node_modules", "wsbroker-client"));
    fs.symlinkSync(path.join(clientDir, "node_modules", "ws"), path.join(app, "node_modules", "ws"));
    const argv = (broker) => {
        fs.writeFileSync(path.join(app, "example.mjs"), example.replaceAll("127.0.0.1:8080", `127.0.0.1:${broker.port}`));
        return [process.execPath, "example.mjs"];
    };
    await withBackground(argv, app, async (broker, run) => {
        const { code } = await within(run.exited, 10000, "the example to end");
        assert.equal(code, 0, run.err);
        assert.equal(run.err, "");
        // The subscriber's line and the ack's may come in either order.
        const lines = run.out.trim().split("\n");
        assert.equal(lines[0], "state: open");
        assert.deepEqual(lines.slice(1).sort(), ["prices.btc.usd { bid: 64000.5 }", "published as 1", "state: closed"].sort());
    }).finally(() => fs.rmSync(app, { recursive: true, force: true }));
});
