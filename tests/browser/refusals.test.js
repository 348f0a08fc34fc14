// Refusals a browser can see (PROTOCOL.md 8 and 10), in real Chromium: a page
// served by the broker connects with a bad token, and from an Origin the
// broker does not allow. A browser's WebSocket API hides an HTTP 403 (the page
// would see 1006 and reconnect forever), so the broker upgrades and closes at
// once with 4001 / 4003; the JS client must raise an "error" event with the
// code and reason and stop: the broker sees one attempt, not a storm.
//
// Env: WSBROKER_BIN, WSBROKER_CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir, metrics, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const WAIT = 10000;

// The page: connects to its own broker's /ws with the options the test
// passes, and resolves with the client's error events once it is closed.
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>refusals</title>
<script type="module">
import { connect } from "/js/wsbroker.js";
window.tryConnect = (opts) => new Promise((resolve) => {
    const errors = [];
    const c = connect("/ws", { ...opts, reconnect: { minDelay: 50, maxDelay: 200 } });
    c.on("error", (e) => errors.push({ code: e.code, closeCode: e.closeCode, closeReason: e.closeReason }));
    c.on("close", (info) => resolve({ state: c.state, code: info.code, reason: info.reason, errors }));
});
window.ready = true;
</script>`;

let webRoot;
let profile;
let context;
const brokers = [];

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-refusals-"));
    fs.mkdirSync(path.join(webRoot, "js"));
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    fs.writeFileSync(path.join(webRoot, "index.html"), PAGE);
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        timeout: 30000,
    });
    context.setDefaultTimeout(WAIT);
});

after(async () => {
    await context?.close();
    for (const b of brokers) {
        const { code } = await b.stop();
        b.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${b.stderr}`);
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function startBroker(args) {
    const b = new Broker({ webRoot, args: [...args, "--log-level", "info"] });
    await b.start();
    brokers.push(b);
    return b;
}

async function openPage(broker) {
    const page = await context.newPage();
    const res = await page.goto(`${broker.httpUrl}/`);
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => window.ready === true);
    return page;
}

const refusedLines = (broker) => broker.stderr.split("\n").filter((l) => l.includes('msg="handshake refused"'));

test("a bad token: the page's client gets error 4001 'invalid token' and does not reconnect", async () => {
    const broker = await startBroker(["--auth-required", "true", "--auth-jwt-secret", "browser-test-secret-0123456789"]);
    const page = await openPage(broker);
    const result = await page.evaluate(() => window.tryConnect({ token: "not.a.valid-token" }));
    assert.equal(result.state, "closed");
    assert.equal(result.code, 4001);
    assert.deepEqual(result.errors, [{ code: "invalid_token", closeCode: 4001, closeReason: "invalid token" }]);
    // One attempt: the client is closed (final), and the broker saw one refusal.
    const m = await metrics(broker);
    assert.equal(m["wsbroker_handshake_failures_total"], 1);
    assert.equal(m['wsbroker_close_frames_total{code="4001"}'], 1);
    assert.equal(m["wsbroker_websocket_upgrades_total"], 0);
    assert.equal(refusedLines(broker).length, 1, broker.stderr);
    assert.match(refusedLines(broker)[0], /level=info .*peer=127\.0\.0\.1:\d+ close=4001 why=/);
    await page.close();
});

test("an Origin the broker does not allow: error 4003 'origin not allowed', no reconnect", async () => {
    const broker = await startBroker(["--allowed-origins", "https://only.example"]);
    const page = await openPage(broker);
    const result = await page.evaluate(() => window.tryConnect({}));
    assert.equal(result.state, "closed");
    assert.equal(result.code, 4003);
    assert.deepEqual(result.errors, [{ code: "origin_not_allowed", closeCode: 4003, closeReason: "origin not allowed" }]);
    const m = await metrics(broker);
    assert.equal(m["wsbroker_handshake_failures_total"], 1);
    assert.equal(m['wsbroker_close_frames_total{code="4003"}'], 1);
    assert.equal(refusedLines(broker).length, 1, broker.stderr);
    assert.match(refusedLines(broker)[0], new RegExp(`close=4003 .*origin=http://127\\.0\\.0\\.1:${broker.port}`));
    await page.close();
});
