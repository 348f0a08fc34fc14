// The SSE fallback in real Chromium (issue 20 item 4, PROTOCOL.md 15): a page
// reading GET /sse with the browser's own EventSource (ids, data, several
// topics), and the JS client falling back to SSE + HTTP publish when the
// page's WebSocket cannot be used (its constructor throws, as when a proxy
// or policy blocks it): subscribe, publish, unsubscribe and resubscribe work
// unchanged for the app.
//
// Every wait is on a condition (page.waitForFunction), never a pause. Env:
// WSBROKER_BIN, WSBROKER_CHROMIUM (default /usr/bin/chromium).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const WAIT = 10000;
const TOPICS = [{ pattern: "chat.>", history: { size: 100 } }];

// window.events collects what EventSource hands the page.
const RAW_PAGE = `<!doctype html>
<meta charset="utf-8"><title>raw sse</title><link rel="icon" href="data:,">
<script>
window.events = [];
const es = new EventSource("/sse?topic=chat.room&topic=news.*");
es.addEventListener("subscribed", (e) => window.events.push({ kind: "subscribed", data: JSON.parse(e.data) }));
es.addEventListener("message", (e) => window.events.push({ kind: "message", id: e.lastEventId, data: JSON.parse(e.data) }));
</script>`;

// A page whose WebSocket is blocked: the client must fall back.
const FALLBACK_PAGE = `<!doctype html>
<meta charset="utf-8"><title>fallback</title><link rel="icon" href="data:,">
<script>
window.WebSocket = class { constructor() { throw new Error("WebSocket blocked here"); } };
// Each stream the client opens, and whether the broker said it is live.
window.streams = [];
window.EventSource = class extends EventSource {
    constructor(url) {
        super(url);
        const s = { url, live: false };
        window.streams.push(s);
        this.addEventListener("subscribed", () => { s.live = true; });
    }
};
</script>
<script type="module">
import { connect } from "/js/wsbroker.js";
const c = connect("/ws", { transports: ["websocket", "sse"], sseAfter: 2, reconnect: { minDelay: 10, maxDelay: 50 } });
window.got = [];
window.errors = [];
c.on("error", (e) => { if (e.code !== "connect") window.errors.push(e.code); });
window.api = {
    state: () => c.state,
    transport: () => c.transport,
    listen: async (pattern) => {
        const s = c.subscribe(pattern, (m) => window.got.push({ topic: m.topic, seq: m.seq, data: m.data }));
        window.subs = { ...(window.subs || {}), [pattern]: s };
        await s.ready;
    },
    drop: async (pattern) => { await window.subs[pattern].unsubscribe(); },
    publish: async (topic, data) => {
        try { return await c.publish(topic, data); } catch (e) { return { code: e.code }; }
    },
    presence: async (topic) => {
        try { return await c.presence(topic); } catch (e) { return { code: e.code }; }
    },
};
window.ready = true;
</script>`;

let context;
let profile;
let webRoot;
let broker;
const pageErrors = [];

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-sse-"));
    fs.mkdirSync(path.join(webRoot, "js"));
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    fs.writeFileSync(path.join(webRoot, "raw.html"), RAW_PAGE);
    fs.writeFileSync(path.join(webRoot, "fallback.html"), FALLBACK_PAGE);
    broker = new Broker({ webRoot, args: ["--topics", JSON.stringify(TOPICS)] });
    await broker.start();
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
    if (broker) {
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function openPage(name, file) {
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: pageerror: ${err.message}`));
    page.on("console", (msg) => {
        if (msg.type() === "error") pageErrors.push(`${name}: console.error: ${msg.text()}`);
    });
    const res = await page.goto(`${broker.httpUrl}/${file}`);
    assert.equal(res.status(), 200);
    return page;
}

async function publish(topic, data) {
    const res = await broker.publish({ topic, data });
    assert.equal(res.status, 200, `publish to ${topic}: ${JSON.stringify(res.body)}`);
    return res.body.seq;
}

test("a page's EventSource gets subscribed events, then messages with <epoch>:<seq> ids", async () => {
    const page = await openPage("raw", "raw.html");
    await page.waitForFunction(() => window.events.filter((e) => e.kind === "subscribed").length === 2);
    const subs = await page.evaluate(() => window.events.map((e) => e.data));
    const epoch = subs[0].epoch;
    assert.equal(subs[0].topic, "chat.room");
    assert.equal(typeof epoch, "string");
    assert.deepEqual(subs[1], { topic: "news.*" });
    const s1 = await publish("chat.room", { text: "hello" });
    await publish("news.tech", [1, 2]);
    await page.waitForFunction(() => window.events.length === 4);
    const msgs = (await page.evaluate(() => window.events)).slice(2);
    assert.deepEqual(msgs[0], {
        kind: "message",
        id: `${epoch}:${s1}`,
        data: { type: "message", topic: "chat.room", seq: s1, epoch, data: { text: "hello" } },
    });
    assert.equal(msgs[1].data.topic, "news.tech");
    assert.deepEqual(msgs[1].data.data, [1, 2]);
    await page.close();
    assert.deepEqual(pageErrors, []);
});

test("the JS client falls back to SSE + HTTP publish when WebSocket is blocked", async () => {
    const page = await openPage("fallback", "fallback.html");
    await page.waitForFunction(() => window.ready === true && window.api.state() === "open");
    assert.equal(await page.evaluate(() => window.api.transport()), "sse");
    await page.evaluate(() => window.api.listen("chat.fb"));
    // The page publishes (fetch POST /api/publish) and receives (EventSource).
    const ack = await page.evaluate(() => window.api.publish("chat.fb", { n: 1 }));
    assert.equal(ack.topic, "chat.fb");
    assert.equal(typeof ack.seq, "number");
    await publish("chat.fb", { n: 2 });
    await page.waitForFunction(() => window.got.length === 2);
    assert.deepEqual(await page.evaluate(() => window.got.map((m) => m.data.n)), [1, 2]);
    // A second pattern reopens the stream with both; messages keep coming.
    await page.evaluate(() => window.api.listen("alerts.*"));
    await publish("alerts.fire", "a");
    await publish("chat.fb", { n: 3 });
    await page.waitForFunction(() => window.got.length === 4);
    const got = await page.evaluate(() => window.got.slice(2).map((m) => [m.topic, m.data]));
    assert.deepEqual(got.sort(), [["alerts.fire", "a"], ["chat.fb", { n: 3 }]].sort());
    // Unsubscribed: no longer delivered. The reopened stream is live for
    // chat.fb when unsubscribe() resolves (else a publish right after it
    // could fall in the gap between the two streams).
    const last = await page.evaluate(async () => {
        await window.api.drop("alerts.*");
        return { ...window.streams.at(-1) }; // as it was when drop() resolved
    });
    assert.ok(!last.url.includes("alerts"), last.url);
    assert.equal(last.live, true);
    await publish("alerts.fire", "b");
    await publish("chat.fb", { n: 4 });
    await page.waitForFunction(() => window.got.some((m) => m.data?.n === 4));
    assert.ok(!(await page.evaluate(() => window.got.some((m) => m.data === "b"))));
    // What SSE cannot do says so.
    assert.deepEqual(await page.evaluate(() => window.api.presence("chat.fb")), { code: "not_available" });
    assert.deepEqual(await page.evaluate(() => window.errors), []);
    await page.close();
    assert.deepEqual(pageErrors, []);
});

const SECRET = "sse-browser-secret-0123456789abcdef";

function jwt(claims) {
    const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const head = enc({ alg: "HS256", typ: "JWT" });
    const body = enc(claims);
    const sig = crypto.createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
    return `${head}.${body}.${sig}`;
}

// The broker ends a stream at its token's exp: the client's refresh (before
// exp) must move the stream to the fresh token, so the app sees no drop.
test("over SSE a refreshed token keeps the stream past the first token's exp", async () => {
    const iat = Math.floor(Date.now() / 1000);
    const grants = { sub: "ann", subscribe: ["chat.>"], publish: ["chat.>"] };
    const short = jwt({ ...grants, iat, exp: iat + 3 });
    const long = jwt({ ...grants, iat, exp: iat + 600 });
    const page = `<!doctype html>
<meta charset="utf-8"><title>refresh</title><link rel="icon" href="data:,">
<script>window.WebSocket = class { constructor() { throw new Error("blocked"); } };</script>
<script type="module">
import { connect } from "/js/wsbroker.js";
// The blocked WebSocket attempt and the stream get the short token, the refresh the long one.
const tokens = [${JSON.stringify(short)}, ${JSON.stringify(short)}, ${JSON.stringify(long)}];
const c = connect("/ws", { transports: ["websocket", "sse"], sseAfter: 1, reconnect: { minDelay: 10, maxDelay: 50 },
    getToken: async () => tokens.length > 1 ? tokens.shift() : tokens[0] });
window.got = [];
window.drops = [];
c.on("disconnect", (d) => window.drops.push(d.code));
c.on("error", (e) => { if (e.code !== "connect") window.drops.push(e.code); });
window.api = { state: () => c.state, transport: () => c.transport };
await c.subscribe("chat.r", (m) => window.got.push(m.data)).ready;
window.drops.length = 0; // the blocked WebSocket's attempt is not what this test is about
window.ready = true;
</script>`;
    fs.writeFileSync(path.join(webRoot, "refresh.html"), page);
    const authed = new Broker({ webRoot, args: ["--auth-jwt-secret", SECRET, "--auth-leeway", "0s"] });
    await authed.start();
    try {
        const p = await context.newPage();
        p.on("pageerror", (err) => pageErrors.push(`refresh: pageerror: ${err.message}`));
        await p.goto(`${authed.httpUrl}/refresh.html`);
        await p.waitForFunction(() => window.ready === true && window.api.state() === "open");
        assert.equal(await p.evaluate(() => window.api.transport()), "sse");
        // Past the first token's exp, with margin for the broker's deadline tick (1 s).
        await p.waitForFunction((t) => Date.now() > t, (iat + 6) * 1000, { timeout: 20000 });
        const res = await authed.publish({ topic: "chat.r", data: "after exp" });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        await p.waitForFunction(() => window.got.includes("after exp"));
        assert.deepEqual(await p.evaluate(() => window.drops), []);
        await p.close();
    } finally {
        const { code } = await authed.stop();
        authed.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${authed.stderr}`);
    }
    assert.deepEqual(pageErrors, []);
});
