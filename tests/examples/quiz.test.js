// examples/quiz as the host and two players see it: `examples/run quiz`,
// three browser contexts. The host sees both players join (presence), asks a
// question, sees both answers come in and reveals: every page shows the
// same scores; a late player joins the current round from history.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("quiz");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

const score = (page, player) => page.locator(`#scores li[data-player="${player}"]`).getAttribute("data-score");

test("players join, answer, and every page shows one scoreboard", async () => {
    const host = await openPage(browser, example.url, { user: "host", errors });
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [h, a, b] = [host.page, alice.page, bob.page];
    for (const p of ["alice", "bob"]) await h.locator(`#scores li[data-player="${p}"]`).waitFor();
    assert.equal(await h.locator("#player-count").textContent(), "2");
    assert.equal(await a.locator("#host").isVisible(), false, "players have no host controls");

    await h.click("#ask");
    for (const p of [a, b]) await p.locator("#q-title", { hasText: "Q1. Which protocol upgrades" }).waitFor();
    await a.click('#options li[data-option="0"] button');
    await b.click('#options li[data-option="1"] button');
    await h.locator("#answered", { hasText: "2" }).waitFor();
    assert.equal(await a.locator("#options button").count(), 0, "one answer per question");

    await h.click("#reveal");
    await a.locator("#answer-status", { hasText: "Right!" }).waitFor();
    await b.locator("#answer-status", { hasText: "Not this time." }).waitFor();
    for (const p of [h, a, b]) {
        await p.locator('#scores li[data-player="alice"][data-score="1"]').waitFor();
        assert.equal(await score(p, "bob"), "0");
    }
    assert.ok(await fitsWidth(b), "the quiz fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "quiz");

    // A late player: the current (revealed) question and the scores, at once.
    const carol = await openPage(browser, example.url, { user: "carol", errors });
    await carol.page.locator("#q-title", { hasText: "Q1." }).waitFor();
    await carol.page.locator('#options li.lead[data-option="0"]').waitFor();
    await carol.page.locator('#scores li[data-player="alice"][data-score="1"]').waitFor();
    await h.locator('#scores li[data-player="carol"]').waitFor();
    for (const x of [host, alice, bob, carol]) await x.context.close();
    assert.deepEqual(errors, []);
});
