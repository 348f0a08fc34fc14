// permessage-deflate in real Chromium (issue 20): the demo page's WebSocket
// negotiates the extension by itself (the browser offers it, the broker
// answers server_no_context_takeover), and a large message published to it
// arrives intact over the shared compressed frame.
//
// Env: WSBROKER_BIN (the broker), WSBROKER_CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir, metrics, repoRoot, requireDevDependency, waitFor } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const WAIT = 10000;

let broker;
let context;
let page;
let webRoot;
let profile;
const handshakes = []; // the page's WebSocket upgrade responses (CDP)

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-"));
    fs.cpSync(path.join(repoRoot, "web"), webRoot, { recursive: true });
    fs.mkdirSync(path.join(webRoot, "js"), { recursive: true });
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    broker = new Broker({ webRoot });
    await broker.start();
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        timeout: 30000,
    });
    context.setDefaultTimeout(WAIT);
    page = context.pages()[0] || (await context.newPage());
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    cdp.on("Network.webSocketHandshakeResponseReceived", (e) => handshakes.push(e.response));
});

after(async () => {
    await context?.close();
    if (broker) {
        await broker.stop();
        broker.cleanup();
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function header(headers, name) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? undefined : headers[key];
}

test("the demo page's connection negotiates permessage-deflate and messages arrive intact", async () => {
    await page.goto(`${broker.httpUrl}/`);
    await page.waitForSelector('#conn-state[data-state="open"]');
    await waitFor(() => handshakes.length > 0, WAIT, "the WebSocket handshake seen over CDP");
    const ext = header(handshakes[0].headers, "Sec-WebSocket-Extensions");
    assert.match(ext ?? "", /^permessage-deflate; server_no_context_takeover/);
    await page.waitForFunction(() => window.wsbDemo?.subscriptions.every((s) => s.active));

    // Larger than compression.min_size: goes out compressed to the page.
    const before = (await metrics(broker))["wsbroker_deflate_deliveries_total"] ?? 0;
    const text = "compressed hello " + "0123456789abcdef".repeat(40);
    const res = await broker.publish({ topic: "demo.hello", data: { text } });
    assert.equal(res.status, 200);
    const row = page.locator("#feed li", { hasText: "compressed hello" });
    await row.waitFor();
    assert.ok((await row.textContent()).includes("0123456789abcdef0123456789abcdef"));
    const after = (await metrics(broker))["wsbroker_deflate_deliveries_total"];
    assert.ok(after > before, `deflate deliveries ${before} -> ${after}`);
});
