// wss:// with other TLS stacks than OpenSSL's own client: real Chromium
// (BoringSSL) loads a page over https from the broker's TLS port and talks to
// /ws over wss://, and Node's `ws` (Node's bundled OpenSSL) does the same.
// After a TLS 1.3 handshake the broker protects the records itself
// (broker/net/tls_record.c): both directions, small messages and one of
// 200 KB (a dozen full 16 KiB records each way) must arrive intact.
//
// Env: WSBROKER_BIN, WSBROKER_CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");
const { WebSocket } = requireDevDependency("ws");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const WAIT = 15000;

// The page: one raw WebSocket to its own origin's /ws; subscribes, publishes
// `data` and resolves with what came back (or the close that came instead).
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>tls</title>
<script>
window.roundTrip = (data) => new Promise((resolve) => {
    const ws = new WebSocket("wss://" + location.host + "/ws");
    ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === "ack" && m.id === 1) {
            ws.send(JSON.stringify({ type: "publish", topic: "tls.page", data, id: 2 }));
        } else if (m.type === "message") {
            ws.close(1000);
            resolve({ data: m.data });
        }
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", topic: "tls.page", id: 1 }));
    ws.onclose = (ev) => resolve({ closed: ev.code });
});
window.ready = true;
</script>`;

let dir;
let profile;
let context;
let broker;
let tlsPort;

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-browser-tls-"));
    const cert = path.join(dir, "tls.crt");
    const key = path.join(dir, "tls.key");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
    fs.mkdirSync(path.join(dir, "www"));
    fs.writeFileSync(path.join(dir, "www", "index.html"), PAGE);
    const portFile = path.join(dir, "tls-port");
    broker = new Broker({ webRoot: path.join(dir, "www"),
        args: ["--tls-cert", cert, "--tls-key", key, "--tls-port", "0", "--tls-port-file", portFile,
            "--max-message-size", "1MiB"] });
    await broker.start();
    const deadline = Date.now() + WAIT;
    while (!(fs.existsSync(portFile) && fs.readFileSync(portFile, "utf8").trim())) {
        assert.ok(Date.now() < deadline, "no TLS port file");
        await new Promise((r) => setTimeout(r, 20));
    }
    tlsPort = Number(fs.readFileSync(portFile, "utf8").trim());
    broker.ca = fs.readFileSync(cert);
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        ignoreHTTPSErrors: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--ignore-certificate-errors"],
        timeout: 30000,
    });
    context.setDefaultTimeout(WAIT);
});

after(async () => {
    await context?.close();
    if (broker) {
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    }
    for (const d of [dir, profile]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

const big = Array.from({ length: 200_000 }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join("");

test("Chromium over https and wss://: the page loads and a small and a 200 KB message come back", async () => {
    const page = await context.newPage();
    const res = await page.goto(`https://127.0.0.1:${tlsPort}/`);
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => window.ready === true);
    assert.deepEqual(await page.evaluate((d) => window.roundTrip(d), "hello"), { data: "hello" });
    const back = await page.evaluate((d) => window.roundTrip(d), big);
    assert.equal(back.closed, undefined, `closed with ${back.closed}`);
    assert.equal(back.data.length, big.length);
    assert.ok(back.data === big, "the 200 KB message differs");
    await page.close();
});

test("Node's ws over wss://: TLS 1.3, a small and a 200 KB message come back", async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${tlsPort}/ws`, { ca: broker.ca, servername: "localhost" });
    const inbox = [];
    let wake = null;
    ws.on("message", (raw) => {
        inbox.push(JSON.parse(raw.toString()));
        wake?.();
    });
    await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
    });
    assert.equal(ws._socket.getProtocol(), "TLSv1.3");
    const next = async (pred) => {
        const deadline = Date.now() + WAIT;
        for (;;) {
            const i = inbox.findIndex(pred);
            if (i >= 0) return inbox.splice(i, 1)[0];
            assert.ok(Date.now() < deadline, `waited for a message; have ${JSON.stringify(inbox).slice(0, 200)}`);
            await new Promise((r) => {
                wake = r;
                setTimeout(r, 200);
            });
        }
    };
    ws.send(JSON.stringify({ type: "subscribe", topic: "tls.node", id: 1 }));
    await next((m) => m.type === "ack" && m.id === 1);
    for (const [id, data] of [[2, "hello"], [3, big]]) {
        ws.send(JSON.stringify({ type: "publish", topic: "tls.node", data, id }));
        const m = await next((x) => x.type === "message");
        assert.ok(m.data === data, `message ${id} differs`);
    }
    ws.close(1000);
    await new Promise((resolve) => ws.once("close", resolve));
});
