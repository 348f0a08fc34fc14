// examples/livestream as two viewers see it: `examples/run livestream`.
// Both are counted as watching (presence_stats); alice mashes Enter: the
// broker's per-user rate limit refuses some (the page says "slow down"), and
// bob sees exactly the messages that were accepted.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("livestream");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

test("the rate limit keeps a spammer's burst from the crowd; viewers are counted", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [a, b] = [alice.page, bob.page];
    // The count refreshes every 5 s.
    for (const p of [a, b]) await p.locator("#viewers", { hasText: "2" }).waitFor({ timeout: 20000 });

    // Alice sends bursts of 8 messages, each burst within one turn of the
    // page's event loop (as a paste-and-Enter macro would), until the broker
    // refuses one: 8 is over the burst of 5, so one burst is enough however
    // slow the machine (pressing keys one by one through the browser driver
    // can be slower than the refill of 2 a second). At most 20 bursts.
    const refusedSoFar = async () => Number((await a.locator("#notice").getAttribute("data-refused")) || 0);
    let n = 0;
    while (n < 160 && (await refusedSoFar()) === 0) {
        n = await a.evaluate((from) => {
            const form = document.getElementById("composer");
            const input = document.getElementById("text");
            let k = from;
            for (let i = 0; i < 8; i++) {
                input.value = `spam ${++k}`;
                form.requestSubmit();
            }
            return k;
        }, n);
        // Each send settles as shown (accepted) or counted (refused) before the next burst.
        await a.waitForFunction((total) => {
            const mine = document.querySelectorAll("#messages .msg.mine").length;
            const refused = Number(document.getElementById("notice").dataset.refused || 0);
            return mine + refused === total;
        }, n);
    }
    // Every press ends as accepted (shown to alice) or refused (counted): wait for all n.
    await a.waitForFunction((total) => {
        const mine = document.querySelectorAll("#messages .msg.mine").length;
        const refused = Number(document.getElementById("notice").dataset.refused || 0);
        return mine + refused === total;
    }, n);
    const accepted = await a.locator("#messages .msg.mine").count();
    const refused = Number(await a.locator("#notice").getAttribute("data-refused"));
    assert.ok(refused >= 1, `the broker refused some of ${n} (accepted ${accepted})`);
    assert.match(await a.locator("#notice").textContent(), /Slow down/);
    await b.locator('#messages .msg[data-user="alice"]').nth(accepted - 1).waitFor();
    // bob gets exactly the accepted ones (checked after a later message from bob himself).
    await b.fill("#text", "calm down alice");
    await b.press("#text", "Enter");
    await b.locator("#messages .msg.mine", { hasText: "calm down alice" }).waitFor();
    assert.equal(await b.locator('#messages .msg[data-user="alice"]').count(), accepted);
    assert.ok(await fitsWidth(b), "the stream page fits a 390 px wide screen without sideways scrolling");
    await a.locator("#messages .msg", { hasText: "calm down alice" }).waitFor();
    await saveScreenshot(a, "livestream");
    await alice.context.close();
    await bob.context.close();
    assert.deepEqual(errors, []);
});
