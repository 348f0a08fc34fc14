// examples/feeds as its readers see it: `examples/run feeds` (broker +
// backend publishing prices, match events and, as an IoT gateway over HTTP,
// sensor readings). The test is a second gateway (the example's API key): a
// cold-store probe that reports rarely. A page opened later shows every
// instrument, score and sensor at once, the probe's one reading included
// (last value on wildcards); after a forced reconnect it shows the probe's
// latest reading from one message, and the match events without a
// duplicate; a tab whose main thread stalls during a burst ends on the
// newest reading, with the older ones conflated away.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import crypto from "node:crypto";

import { waitFor } from "../../clients/js/test/helpers.js";
import { fitsWidth, launchChromium, openPage, repoRoot, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
let brokerHttp;
const errors = [];
const KEY = JSON.parse(fs.readFileSync(path.join(repoRoot, "examples", "feeds", "wsbroker.json"), "utf8")).api_keys[0].split(":")[0];
const INSTRUMENTS = ["AAPL", "BTC-USD", "ETH-USD", "EUR-USD", "MSFT", "NVDA"];
const SENSORS = ["greenhouse-humidity", "greenhouse-temp", "pump-pressure", "server-room-temp"];

before(async () => {
    example = await runExample("feeds");
    browser = await launchChromium();
    brokerHttp = (await (await fetch(`${example.url}config.json`)).json()).http;
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

/** The test's gateway: POST /api/publish with the example's API key. */
async function publish(topic, data) {
    const res = await fetch(`${brokerHttp}/api/publish`, {
        method: "POST",
        headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({ topic, data }),
    });
    assert.equal(res.status, 200, `publish ${topic}: ${await res.text()}`);
}

async function conflatedTotal() {
    const text = await (await fetch(`${brokerHttp}/metrics`)).text();
    const m = /^wsbroker_conflated_total (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
}

const tile = (page, box, id) => page.locator(`#${box} .tile[data-id="${id}"]`);
const ids = (page, box) => page.locator(`#${box} .tile`).evaluateAll((els) => els.map((e) => e.dataset.id));
const eventNumbers = (page) => page.locator("#events li[data-n]").evaluateAll((els) => els.map((e) => Number(e.dataset.n)));

/**
 * Stalls `page`'s main thread on a synchronous request to a local server (so
 * the browser stops reading its WebSocket) until release() answers it.
 */
async function stall(page) {
    let answer;
    const answered = new Promise((resolve) => {
        answer = resolve;
    });
    let held = false;
    const gate = http.createServer((req, res) => {
        held = true;
        answered.then(() => res.writeHead(200, { "Access-Control-Allow-Origin": "*" }).end("go"));
    });
    await new Promise((resolve) => gate.listen(0, "127.0.0.1", resolve));
    const stalled = page.evaluate((url) => {
        const x = new XMLHttpRequest();
        x.open("GET", url, false);
        x.send();
        return x.responseText;
    }, `http://127.0.0.1:${gate.address().port}/wait`);
    await waitFor(() => held, 10000, "the tab to stall");
    return {
        async release() {
            answer();
            assert.equal(await stalled, "go");
            await new Promise((resolve) => gate.close(resolve));
        },
    };
}

test("late pages see every value at once; a reconnect brings the latest; a slow tab the newest", async (t) => {
    // A probe that reports once, before anyone looks.
    await publish("sensors.cold-store", { sensor: "cold-store", value: -18.5, unit: "°C", ts: Date.now() });

    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const a = alice.page;
    await tile(a, "sensors", "cold-store").waitFor();
    await waitFor(async () => (await ids(a, "prices")).length === INSTRUMENTS.length, 10000, "every instrument on the board");
    await waitFor(async () => (await ids(a, "sensors")).length === SENSORS.length + 1, 10000, "every sensor on the board");
    assert.deepEqual(await ids(a, "prices"), INSTRUMENTS);
    assert.deepEqual(await ids(a, "sensors"), ["cold-store", ...SENSORS]);
    assert.equal(await tile(a, "sensors", "cold-store").getAttribute("data-value"), "-18.5");
    assert.equal(await tile(a, "sensors", "cold-store").getAttribute("data-updates"), "1");
    await a.locator("#scores .score").nth(1).waitFor();
    await a.locator("#events li[data-n]").first().waitFor();

    // Alice's network goes; the probe reports 20 times; back online, the
    // tile shows the latest reading, from one message, not the 20.
    await alice.context.setOffline(true);
    await a.waitForSelector('#conn-state:not([data-state="open"])', { timeout: 30000 });
    for (let i = 1; i <= 20; i++) await publish("sensors.cold-store", { sensor: "cold-store", value: -18.5 + i / 10, unit: "°C", ts: Date.now() });
    await alice.context.setOffline(false);
    await a.waitForSelector('#conn-state[data-state="open"]', { timeout: 30000 });
    await a.locator('#sensors .tile[data-id="cold-store"][data-value="-16.5"]').waitFor();
    assert.equal(await tile(a, "sensors", "cold-store").getAttribute("data-updates"), "2", "one update after the reconnect");
    // The match events: each once, in order (newest first), none missing.
    const seen = await eventNumbers(a);
    assert.deepEqual(seen, [...seen].sort((x, y) => y - x), "events newest first");
    assert.equal(new Set(seen).size, seen.length, `no event twice: ${seen}`);
    assert.equal(seen[0] - seen.at(-1) + 1, seen.length, `no event missing: ${seen}`);
    await saveScreenshot(a, "feeds");

    // Bob opens the board later, at phone width: everything at once.
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const b = bob.page;
    await b.locator('#sensors .tile[data-id="cold-store"][data-value="-16.5"]').waitFor();
    assert.equal(await tile(b, "sensors", "cold-store").getAttribute("data-updates"), "1");
    await waitFor(async () => (await ids(b, "prices")).length === INSTRUMENTS.length, 10000, "every instrument on the late page");
    assert.ok(await fitsWidth(b), "the board fits a 390 px wide screen without sideways scrolling");

    await alice.context.close();

    // Bob's tab stalls (its main thread blocks on a long poll the test
    // answers later) while a vibration sensor bursts large readings, until
    // the broker reports conflation and then some more (bounded by time).
    // Back, bob's tile shows the newest reading, with fewer updates than
    // were sent. The broker's counter also counts conflation elsewhere (a
    // feed's ticks handled in one turn of a loaded broker), so a round whose
    // burst still fitted the buffers between broker and page is repeated
    // with a burst twice as long.
    // Random padding: Chromium negotiates permessage-deflate, and a repeated
    // character would compress away and never fill the broker's queue.
    const pad = crypto.randomBytes(22500).toString("base64");
    const vibration = '#sensors .tile[data-id="vibration"]';
    const deadline = Date.now() + 90000;
    let sent = 0;
    let minimum = 20;
    for (let round = 1; ; round++) {
        const shownBefore = (await b.locator(vibration).count()) ? Number(await b.locator(vibration).getAttribute("data-updates")) : 0;
        const gate = await stall(b);
        const base = await conflatedTotal();
        let burst = 0;
        let conflated = base;
        while (Date.now() < deadline && (conflated <= base || burst < minimum)) {
            sent++;
            burst++;
            await publish("sensors.vibration", { sensor: "vibration", value: sent, unit: "mm/s", pad, ts: Date.now() });
            if (burst % 10 === 0) conflated = await conflatedTotal();
        }
        // If the queue holds unsent messages now, these replace each other there.
        for (let i = 0; i < 10; i++) {
            sent++;
            burst++;
            await publish("sensors.vibration", { sensor: "vibration", value: sent, unit: "mm/s", pad, ts: Date.now() });
        }
        await gate.release();
        await b.locator(`${vibration}[data-value="${sent}"]`).waitFor({ timeout: 30000 });
        const shown = Number(await b.locator(vibration).getAttribute("data-updates")) - shownBefore;
        t.diagnostic(`round ${round}: ${shown} of ${burst} readings shown`);
        if (shown < burst) break;
        assert.ok(Date.now() < deadline, `every reading of every burst shown (the last: ${burst}): nothing conflated away`);
        minimum = burst * 2;
    }
    assert.equal(await b.locator("#conn-state").getAttribute("data-state"), "open");

    await bob.context.close();
    assert.deepEqual(errors, []);
});
