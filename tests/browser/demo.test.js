// The demo page in real Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded). The broker serves the page from a
// web root assembled like `make run`'s (web/ plus the client copied to js/);
// backends publish over POST /api/publish and over a WebSocket (the JS client
// in Node), and the page must show what they publish, publish itself, and
// survive the broker being killed and restarted on the same port.
//
// Env: WSBROKER_BIN (the broker), WSBROKER_CHROMIUM (default /usr/bin/chromium),
// WSBROKER_ARTIFACTS (where the screenshots go; ctest sets the build folder).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { connect } from "../../clients/js/wsbroker.js";
import {
    Broker,
    WebSocket,
    clientDir,
    nextEvent,
    repoRoot,
    requireDevDependency,
    waitFor,
} from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.WSBROKER_ARTIFACTS || path.join(repoRoot, "build", "browser");
const WAIT = 10000; // every wait in the page is bounded by this

let broker;
let context;
let page;
let backend; // the WebSocket publisher (JS client in Node)
let webRoot;
let profile;
const pageErrors = [];

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    // The web root `make run` serves: web/ plus the build's copy of the client.
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
        args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
        viewport: { width: 1440, height: 900 },
        timeout: 30000,
    });
    context.setDefaultTimeout(WAIT);
    page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
        // A killed broker makes Chromium log failed WebSocket connections: expected.
        if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
            pageErrors.push(`console.error: ${msg.text()}`);
        }
    });

    backend = connect(broker.url, { WebSocket, reconnect: { minDelay: 20, maxDelay: 200 } });
    await nextEvent(backend, "open");
});

after(async () => {
    await backend?.close();
    await context?.close();
    if (broker) {
        await broker.stop();
        broker.cleanup();
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function screenshot(name) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, name);
    await page.screenshot({ path: file, fullPage: true });
    return file;
}

// The page's subscriptions are in place once the broker has acknowledged them all.
const pageSubscribed = () =>
    page.waitForFunction(() => window.wsbDemo?.subscriptions.length === 4 && window.wsbDemo.subscriptions.every((s) => s.active));

const connState = () => page.locator("#conn-state").getAttribute("data-state");

test("the broker serves the demo page and it connects", async () => {
    const res = await page.goto(`${broker.httpUrl}/`);
    assert.equal(res.status(), 200);
    assert.equal(await page.title(), "wsbroker · live demo");
    await page.waitForSelector('#conn-state[data-state="open"]');
    assert.match(await page.locator("#st-client").textContent(), /\S/);
    await pageSubscribed();
});

test("a message published with POST /api/publish appears in the demo.> feed", async () => {
    const res = await broker.publish({ topic: "demo.hello", data: { text: "hi from curl" } });
    assert.equal(res.status, 200);
    const row = page.locator("#feed li", { hasText: "hi from curl" });
    await row.waitFor();
    assert.match(await row.textContent(), /demo\.hello/);
    assert.match(await row.textContent(), new RegExp(`#${res.body.seq}`));
});

test("chat messages from HTTP and from a WebSocket publisher appear in the room", async () => {
    await broker.publish({ topic: "chat.lobby", data: { user: "http-bot", text: "hello over HTTP", ts: Date.now() } });
    const ack = await backend.publish("chat.lobby", { user: "ws-bot", text: "hello over WebSocket", ts: Date.now() });
    assert.equal(typeof ack.seq, "number");
    await page.locator("#chat-messages .msg", { hasText: "hello over HTTP" }).waitFor();
    const wsMsg = page.locator("#chat-messages .msg", { hasText: "hello over WebSocket" });
    await wsMsg.waitFor();
    assert.match(await wsMsg.locator(".who").textContent(), /ws-bot/);
    // Another room: not shown, counted as unread on its tab.
    await backend.publish("chat.random", { user: "ws-bot", text: "psst", ts: Date.now() });
    await page.locator("#rooms button", { hasText: "random" }).locator(".badge").waitFor();
});

test("the page publishes: its chat message reaches a subscriber in Node", async () => {
    const got = [];
    const sub = backend.subscribe("chat.lobby", (m) => got.push(m.data));
    await sub.ready;
    await page.fill("#chat-name", "alice");
    await page.fill("#chat-text", "hi from the browser");
    await page.click("#chat-form button");
    await waitFor(() => got.some((d) => d.text === "hi from the browser"), WAIT, "the page's chat message");
    assert.equal(got.find((d) => d.text === "hi from the browser").user, "alice");
    await page.locator("#chat-messages .msg.mine", { hasText: "hi from the browser" }).waitFor();
    await sub.unsubscribe();
});

test("ticker: WebSocket-published prices update the cards; the page's simulated feed publishes", async () => {
    for (const [i, price] of [64000, 64100.5, 63950.25].entries()) {
        await backend.publish("demo.ticker.btc", { price });
        await backend.publish("demo.ticker.eth", 3400 + i * 5); // a bare number works too
    }
    await page.waitForFunction(() => document.querySelector('.sym[data-symbol="btc"] .price').textContent === "63,950.25");
    await page.waitForFunction(() => document.querySelector('.sym[data-symbol="eth"] .price').textContent === "3,410.00");
    // The price text is set on receipt, the chart on the next animation frame.
    await page.locator("#chart-empty").waitFor({ state: "hidden" });

    const ticks = [];
    const sub = backend.subscribe("demo.ticker.*", (m) => ticks.push(m.topic));
    await sub.ready;
    await page.click("label.switch"); // simulated feed on
    await waitFor(() => new Set(ticks).size === 4, WAIT, "ticks for the four symbols from the page");
    await page.waitForFunction(() => Number(document.getElementById("st-rate").textContent) > 0);
    await sub.unsubscribe();
});

test("the page looks right (screenshot)", async () => {
    await backend.publish("demo.orders.42", { status: "filled", qty: 3 });
    await page.locator("#feed li", { hasText: "filled" }).waitFor();
    await page.waitForTimeout(1500); // let the rate chart fill a little
    const file = await screenshot("demo.png");
    assert.ok(fs.statSync(file).size > 10000, `screenshot ${file}`);
    console.log(`# screenshot: ${file}`);
    // The one-column layout of a narrow window: nothing may overflow sideways.
    await page.setViewportSize({ width: 420, height: 900 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page is ${overflow} px wider than a 420 px window`);
    await screenshot("demo-narrow.png");
    await page.setViewportSize({ width: 1440, height: 900 });
});

test("the page reconnects and resubscribes when the broker is killed and restarted", async () => {
    await page.click("label.switch"); // feed off: only our messages from now on
    const port = broker.port;
    await broker.kill();
    await page.waitForFunction(() => document.getElementById("conn-state").dataset.state === "connecting");
    await screenshot("demo-reconnecting.png");
    broker.proc = null;
    await broker.start(); // same Broker: same port, same web root
    assert.equal(broker.port, port);
    await page.waitForSelector('#conn-state[data-state="open"]', { timeout: 15000 });
    await waitFor(() => backend.state === "open", WAIT, "backend reconnect");
    await pageSubscribed();
    await broker.publish({ topic: "demo.hello", data: { text: "after the restart" } });
    await page.locator("#feed li", { hasText: "after the restart" }).waitFor();
    await page.locator("#chat-messages .msg.system", { hasText: "reconnected" }).waitFor();
    assert.equal(await page.locator("#st-reconnects").textContent(), "1");
    assert.equal(await connState(), "open");
});

test("README.md's browser example works as written in a page the broker serves", async () => {
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
    const section = readme.split("\n## Clients\n")[1].split("\n## ")[0];
    const html = section.match(/```html\n([\s\S]*?)```/);
    assert.ok(html, "no html example in README.md's Clients section");
    fs.writeFileSync(path.join(webRoot, "readme-example.html"), html[1]);
    const example = await context.newPage();
    const logged = [];
    example.on("console", async (msg) => {
        if (msg.type() === "log") logged.push(await Promise.all(msg.args().map((a) => a.jsonValue())));
    });
    example.on("pageerror", (err) => pageErrors.push(`readme example: ${err.message}`));
    try {
        await example.goto(`${broker.httpUrl}/readme-example.html`);
        // Its own publish comes back through its subscription...
        await waitFor(() => logged.length >= 1, WAIT, "the example's own message");
        assert.equal(logged[0][0], "demo.hello");
        assert.ok(Number.isInteger(logged[0][1]) && logged[0][1] >= 1, `seq ${logged[0][1]}`);
        assert.deepEqual(logged[0][2], { text: "hi" });
        // ...and so does a backend's.
        const res = await broker.publish({ topic: "demo.readme", data: [1, 2] });
        await waitFor(() => logged.length >= 2, WAIT, "a backend's message");
        assert.deepEqual(logged[1], ["demo.readme", res.body.seq, [1, 2]]);
    } finally {
        await example.close();
    }
});

test("no errors in the page", () => {
    assert.deepEqual(pageErrors, []);
});
