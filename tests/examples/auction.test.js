// examples/auction as its users see it: `examples/run auction` (broker +
// FastAPI backend), three browser contexts: two bidders (bob at phone
// width) and the seller. The backend accepts or refuses each bid (request/
// reply); bob drops off the network while alice outbids him and, back,
// catches up from the stream; after the hammer every page shows one winner.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("auction");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

async function bid(page, amount) {
    await page.fill("#bid-amount", String(amount));
    await page.click("#bid-button");
}

test("bids are judged by the backend; a reconnecting bidder catches up; everyone sees one winner", async () => {
    const seller = await openPage(browser, example.url, { user: "seller", errors });
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [s, a, b] = [seller.page, alice.page, bob.page];
    for (const p of [s, a, b]) await p.locator("#lot-title", { hasText: "Vintage analog synthesizer" }).waitFor();
    assert.equal(await s.locator("#bid-form").isVisible(), false, "the seller has no bid form");
    assert.equal(await a.locator("#seller").isVisible(), false, "a bidder has no hammer");

    await bid(a, 100);
    await a.locator("#bid-status", { hasText: "Your bid of 100 is in." }).waitFor();
    await b.locator("#lot-leader", { hasText: "alice" }).waitFor();
    assert.equal(await b.locator("#lot-price").textContent(), "100");

    // Too low: the backend says why, nothing changes for anyone.
    await bid(b, 102);
    await b.locator("#bid-status", { hasText: "Not accepted: the lowest bid now is 105" }).waitFor();
    assert.equal(await a.locator("#lot-count").textContent(), "1");
    await bid(b, 105);
    await b.locator("#bid-status", { hasText: "Your bid of 105 is in." }).waitFor();
    await a.locator("#lot-leader", { hasText: "bob" }).waitFor();

    // Bob's network goes away; alice outbids; bob comes back and catches up.
    await bob.context.setOffline(true);
    await b.waitForSelector('#conn-state:not([data-state="open"])', { timeout: 30000 });
    await bid(a, 120);
    await a.locator("#bid-status", { hasText: "Your bid of 120 is in." }).waitFor();
    await bob.context.setOffline(false);
    await b.waitForSelector('#conn-state[data-state="open"]', { timeout: 30000 });
    await b.locator("#lot-price", { hasText: "120" }).waitFor();
    assert.equal(await b.locator("#lot-count").textContent(), "3");
    assert.deepEqual(await b.locator("#bids li").evaluateAll((els) => els.map((e) => e.dataset.bidder)), ["alice", "bob", "alice"]);

    await bid(b, 125);
    await b.locator("#bid-status", { hasText: "Your bid of 125 is in." }).waitFor();
    await a.locator("#lot-leader", { hasText: "bob" }).waitFor();

    // The seller brings the hammer down: one winner, the same on every page.
    await s.click("#hammer");
    await a.locator("#result", { hasText: "Sold to bob for 125" }).waitFor();
    await s.locator("#result", { hasText: "Sold to bob for 125" }).waitFor();
    await b.locator("#result", { hasText: "Sold to you for 125!" }).waitFor();
    for (const p of [s, a, b]) {
        assert.deepEqual(await p.locator("#result").evaluateAll((els) => els.map((e) => e.dataset.winner)), ["bob"]);
        assert.equal(await p.locator("#bid-form").isVisible(), false, "no bidding on a closed lot");
    }
    assert.ok(await fitsWidth(b), "the auction fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "auction");

    // A page opened now replays the lot from the stream: the same winner.
    const carol = await openPage(browser, example.url, { user: "carol", errors });
    await carol.page.locator("#result", { hasText: "Sold to bob for 125" }).waitFor();
    assert.equal(await carol.page.locator("#lot-count").textContent(), "4");

    for (const c of [seller, alice, bob, carol]) await c.context.close();
    assert.deepEqual(errors, []);
});
