// examples/voting as its voters see it: `examples/run voting` (broker + Flask
// backend), alice and bob (phone width) in two browser contexts. Each vote
// shows on both pages; alice in a second window cannot vote again, nor can
// a replayed request with her token: the tally counts each user once.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("voting");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

const count = (page, choice) => page.locator(`#choices li[data-choice="${choice}"]`).getAttribute("data-count");

test("the tally counts each user once, and every page shows it", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [a, b] = [alice.page, bob.page];
    for (const p of [a, b]) await p.locator("#question", { hasText: "What should the team build next?" }).waitFor();
    await a.locator('#choices li[data-choice="dark"] button').waitFor();

    await a.click('#choices li[data-choice="dark"] button');
    await a.locator("#vote-status", { hasText: "Your vote is counted." }).waitFor();
    await b.locator('#choices li[data-choice="dark"][data-count="1"]').waitFor();
    assert.equal(await b.locator("#total").textContent(), "1");
    assert.equal(await a.locator("#choices button").count(), 0, "no vote buttons once voted");

    // Alice again, in another window: her vote is known, no buttons; a replayed POST is refused.
    const alice2 = await openPage(browser, example.url, { user: "alice", errors });
    await alice2.page.locator('#choices li.mine[data-choice="dark"]', { hasText: "(your vote)" }).waitFor();
    assert.equal(await alice2.page.locator("#choices button").count(), 0);
    // (from Node: in a page, Chromium would log the 409 as a console error)
    const { token } = await (await fetch(`${example.url}api/token?user=alice`)).json();
    const res = await fetch(`${example.url}api/vote`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ choice: "search" }),
    });
    const replay = { status: res.status, body: await res.json() };
    assert.deepEqual(replay, { status: 409, body: { error: "you have already voted", my_vote: "dark" } });

    await b.click('#choices li[data-choice="search"] button');
    await b.locator("#vote-status", { hasText: "Your vote is counted." }).waitFor();
    await a.locator('#choices li[data-choice="search"][data-count="1"]').waitFor();
    for (const p of [a, b, alice2.page]) {
        await p.locator("#total", { hasText: "2" }).waitFor();
        assert.equal(await count(p, "dark"), "1");
        assert.equal(await count(p, "search"), "1");
        assert.equal(await count(p, "mobile"), "0");
    }
    assert.ok(await fitsWidth(b), "the poll fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "voting");
    for (const c of [alice, alice2, bob]) await c.context.close();
    assert.deepEqual(errors, []);
});
