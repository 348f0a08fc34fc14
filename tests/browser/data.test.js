// The JS client's data API in real Chromium (issue 19): request/reply between
// two pages (the first reply resolves request() with {data, from};
// no_responders for a topic nobody serves; timeout for a silent responder),
// last value on a wildcard (subscribe(pattern, {history: N}) gets the last
// N of every matching topic, then live ones) and a conflated topic that still
// brings the newest value to the page. The broker reads its topic rules from
// a config file, as an operator writes them (README, "Topic rules").
//
// Every wait is on a condition (page.waitForFunction or a promise the page
// resolves), never a pause. Env: WSBROKER_BIN, WSBROKER_CHROMIUM (default
// /usr/bin/chromium).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir, metrics, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const WAIT = 10000;

const CONFIG = {
    topics: [
        { pattern: "prices.>", history: { size: 4 }, conflate: true },
        { pattern: "gps.>", history: { size: 3 } },
    ],
};

// The page: a client on its own broker's /ws; window.api is what the test
// drives. Received messages go to window.got (by subscription name), so the
// test waits on them with waitForFunction.
const PAGE = `<!doctype html>
<meta charset="utf-8"><title>data API</title><link rel="icon" href="data:,">
<script type="module">
import { connect } from "/js/wsbroker.js";
const c = connect("/ws");
window.got = {};
window.errors = [];
c.on("error", (e) => window.errors.push(e.code));
window.api = {
    clientId: () => c.welcome?.client_id ?? null,
    state: () => c.state,
    // A responder: answers each request on pattern with {echo, by}.
    serve: async (pattern) => {
        await c.subscribe(pattern, (m) => {
            if (m.reply_to) c.publish(m.reply_to, { echo: m.data, by: "page" });
        }).ready;
    },
    // A subscriber that never answers.
    listen: async (pattern, name, opts = {}) => {
        window.got[name] = [];
        await c.subscribe(pattern, (m) => window.got[name].push({ topic: m.topic, seq: m.seq, epoch: m.epoch, data: m.data }), opts).ready;
    },
    // Stalls this page's main thread, so the browser stops reading its
    // WebSocket, until the test answers a synchronous XHR to url (a long
    // poll: the wait is on the test's condition and burns no CPU).
    stallUntil: (url) => {
        const x = new XMLHttpRequest();
        x.open("GET", url, false);
        x.send();
        return x.responseText;
    },
    request: (topic, data, opts) =>
        c.request(topic, data, opts).then(
            (reply) => ({ ok: true, reply }),
            (err) => ({ ok: false, code: err.code, topic: err.topic }),
        ),
};
window.ready = true;
</script>`;

let webRoot;
let profile;
let context;
let broker;
const pageErrors = [];

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-data-"));
    fs.mkdirSync(path.join(webRoot, "js"));
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    fs.writeFileSync(path.join(webRoot, "index.html"), PAGE);
    const config = path.join(webRoot, "..", `${path.basename(webRoot)}.json`);
    fs.writeFileSync(config, JSON.stringify(CONFIG));
    broker = new Broker({ webRoot, args: ["--config", config] });
    broker.configFile = config;
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
        fs.rmSync(broker.configFile, { force: true });
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function openPage(name) {
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: pageerror: ${err.message}`));
    page.on("console", (msg) => {
        if (msg.type() === "error") pageErrors.push(`${name}: console.error: ${msg.text()}`);
    });
    const res = await page.goto(`${broker.httpUrl}/`);
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => window.ready === true && window.api.state() === "open");
    return page;
}

async function publish(topic, data) {
    const res = await broker.publish({ topic, data });
    assert.equal(res.status, 200, `publish to ${topic}: ${JSON.stringify(res.body)}`);
}

test("a page's request() gets another page's reply; no_responders; timeout", async () => {
    const device = await openPage("device");
    const operator = await openPage("operator");
    await device.evaluate(() => window.api.serve("dev.*.cmd"));
    const deviceId = await device.evaluate(() => window.api.clientId());

    const ok = await operator.evaluate(() => window.api.request("dev.d7.cmd", { op: "reboot" }, { timeout: 5000 }));
    assert.deepEqual(ok, { ok: true, reply: { data: { echo: { op: "reboot" }, by: "page" }, from: { client: deviceId, user: null } } });

    const none = await operator.evaluate(() => window.api.request("dev.nobody", 1, { timeout: 60000 }));
    assert.deepEqual(none, { ok: false, code: "no_responders", topic: "dev.nobody" });

    // A subscriber that does not answer: the broker ends the request with timeout.
    await device.evaluate(() => window.api.listen("quiet.x", "quiet"));
    const late = await operator.evaluate(() => window.api.request("quiet.x", null, { timeout: 100 }));
    assert.deepEqual(late, { ok: false, code: "timeout", topic: "quiet.x" });
    await device.waitForFunction(() => window.got.quiet.length === 1);

    await device.close();
    await operator.close();
    assert.deepEqual(pageErrors, []);
});

test("a wildcard subscription with history gets the last values of each topic, then live", async () => {
    for (let i = 1; i <= 5; i++) await publish("gps.eu.car1", { n: i });
    await publish("gps.eu.car2", { n: 10 });
    await publish("gps.us.car3", { n: 20 }); // not matched by gps.eu.*
    const page = await openPage("map");
    await page.evaluate(() => window.api.listen("gps.eu.*", "map", { history: 2 }));
    await page.waitForFunction(() => window.got.map.length === 3);
    const replay = await page.evaluate(() => window.got.map);
    const of = (list, topic) => list.filter((m) => m.topic === topic);
    assert.deepEqual(of(replay, "gps.eu.car1").map((m) => [m.seq, m.data.n]), [[4, 4], [5, 5]]);
    assert.deepEqual(of(replay, "gps.eu.car2").map((m) => [m.seq, m.data.n]), [[1, 10]]);
    assert.ok(replay.every((m) => typeof m.epoch === "string" && m.epoch.length > 0), JSON.stringify(replay));

    await publish("gps.eu.car2", { n: 11 });
    await publish("gps.eu.car4", { n: 30 }); // a new topic arrives live from its first message
    await page.waitForFunction(() => window.got.map.length === 5);
    const live = (await page.evaluate(() => window.got.map)).slice(3);
    assert.deepEqual(live.map((m) => [m.topic, m.seq, m.data.n]), [["gps.eu.car2", 2, 11], ["gps.eu.car4", 1, 30]]);
    await page.close();
    assert.deepEqual(pageErrors, []);
});

test("a conflated topic brings the newest value to the page, seqs rising, connection kept", async () => {
    const page = await openPage("ticker");
    await page.evaluate(() => window.api.listen("prices.>", "ticker"));
    const before = await metrics(broker);
    const N = 200;
    // A burst from a backend over HTTP (one request each, in order).
    for (let i = 1; i <= N; i++) await publish("prices.btc.usd", { bid: i });
    await page.waitForFunction((n) => window.got.ticker.at(-1)?.data.bid === n, N);
    const got = await page.evaluate(() => window.got.ticker);
    const seqs = got.map((m) => m.seq);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `seqs not rising: ${seqs}`);
    assert.equal(seqs.at(-1), N);
    // Conflation may skip values (jumps) but never sends one twice or out of order.
    assert.ok(got.length <= N);
    assert.equal(await page.evaluate(() => window.api.state()), "open");
    assert.deepEqual(await page.evaluate(() => window.errors), []);
    const after = await metrics(broker);
    assert.equal((after.wsbroker_slow_consumer_closes_total ?? 0) - (before.wsbroker_slow_consumer_closes_total ?? 0), 0);
    await page.close();
    assert.deepEqual(pageErrors, []);
});

test("a page that stops reading during a burst gets the newest value, conflated, still connected", async (t) => {
    const page = await openPage("stalled");
    await page.evaluate(() => window.api.listen("prices.>", "stalled"));
    const base = (await metrics(broker)).wsbroker_conflated_total ?? 0;
    const closesBase = (await metrics(broker)).wsbroker_slow_consumer_closes_total ?? 0;
    // The page stalls on a long poll to this server, which answers once the
    // burst below is over.
    let release;
    const polled = new Promise((resolve) => {
        release = resolve;
    });
    let held = null;
    const gate = http.createServer((req, res) => {
        held = res;
        polled.then((body) => res.writeHead(200, { "Access-Control-Allow-Origin": "*" }).end(body));
    });
    await new Promise((resolve) => gate.listen(0, "127.0.0.1", resolve));
    const stalled = page.evaluate((url) => window.api.stallUntil(url), `http://127.0.0.1:${gate.address().port}/wait`);
    // A backend publishes large ticks until the broker reports conflation
    // (bounded by time); the page reads nothing meanwhile.
    // Random (base64) padding: Chromium negotiates permessage-deflate, and a
    // repeated character would compress ~1000x and never fill the queue.
    const pad = crypto.randomBytes(22500).toString("base64");
    let sent = 0;
    let conflated = base;
    const end = Date.now() + 30000;
    while (Date.now() < end && conflated <= base) {
        sent++;
        await publish("prices.eth.usd", { bid: sent, pad });
        if (held && sent % 10 === 0) conflated = (await metrics(broker)).wsbroker_conflated_total ?? 0;
    }
    release("go");
    assert.equal(await stalled, "go");
    await new Promise((resolve) => gate.close(resolve));
    t.diagnostic(`conflation after ${sent} publishes`);
    assert.ok(conflated > base, `no conflation reported after ${sent} publishes`);
    // Once it reads again, the newest value arrives; seqs rise with jumps.
    await page.waitForFunction((n) => window.got.stalled.at(-1)?.data.bid === n, sent, { timeout: 30000 });
    const seqs = await page.evaluate(() => window.got.stalled.map((m) => m.seq));
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), "seqs rise");
    assert.equal(seqs.at(-1), sent);
    assert.ok(seqs.length < sent, `${seqs.length} of ${sent} delivered: nothing conflated away`);
    assert.equal(await page.evaluate(() => window.api.state()), "open");
    const m = await metrics(broker);
    assert.equal((m.wsbroker_slow_consumer_closes_total ?? 0) - closesBase, 0);
    await page.close();
    assert.deepEqual(pageErrors, []);
});
