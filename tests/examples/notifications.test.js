// examples/notifications as its users see it: `examples/run notifications`
// (broker + Flask backend). Alice notifies bob: bob's bell counts it, carol
// sees nothing; bob's token cannot read alice's topic. Bob leaves, alice
// sends two more, bob comes back: all three are waiting for him.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { WebSocket } from "../../clients/js/test/helpers.js";
import { connect } from "../../clients/js/wsbroker.js";
import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("notifications");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

async function send(page, to, text) {
    await page.fill("#send-to", to);
    await page.fill("#send-text", text);
    await page.click("#send button");
    await page.locator("#send-status", { hasText: `Sent to ${to}.` }).waitFor();
}

test("a notification reaches its recipient only, and waits for them while away", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const carol = await openPage(browser, example.url, { user: "carol", errors });
    const [a, b, c] = [alice.page, bob.page, carol.page];

    await send(a, "bob", "your build is green");
    await b.locator("#inbox li", { hasText: "your build is green" }).waitFor();
    assert.equal(await b.locator("#inbox li .from").first().textContent(), "alice");
    assert.equal(await b.locator("#unread").textContent(), "1");
    assert.ok(await fitsWidth(b), "the inbox fits a 390 px wide screen without sideways scrolling");
    await b.click("#bell");
    assert.equal(await b.locator("#unread").isVisible(), false);

    // Private: bob's token may not read alice's topic. Carol got nothing (she
    // gets her own next, so the absence is checked after a later delivery).
    const config = await (await fetch(`${example.url}config.json`)).json();
    const bobToken = (await (await fetch(`${example.url}api/token?user=bob`)).json()).token;
    const spy = connect(config.ws, { WebSocket, token: bobToken, reconnect: false });
    await assert.rejects(spy.subscribe("notify.alice").ready, { code: "forbidden" });
    await spy.close();
    await send(a, "carol", "lunch?");
    await c.locator("#inbox li", { hasText: "lunch?" }).waitFor();
    assert.equal(await c.locator("#inbox li").count(), 1, "carol sees only her own notification");

    // Bob goes away; alice sends two more; bob comes back to all three.
    await bob.context.close();
    await send(a, "bob", "deploy started");
    await send(a, "bob", "deploy done");
    const bob2 = await openPage(browser, example.url, { user: "bob", errors });
    const b2 = bob2.page;
    await b2.locator("#inbox li", { hasText: "deploy done" }).waitFor();
    assert.deepEqual(await b2.locator("#inbox li .note").allTextContents(),
        ["deploy done", "deploy started", "your build is green"]);
    assert.equal(await b2.locator("#unread").textContent(), "3");
    await saveScreenshot(b2, "notifications");
    for (const x of [alice, carol, bob2]) await x.context.close();
    assert.deepEqual(errors, []);
});
