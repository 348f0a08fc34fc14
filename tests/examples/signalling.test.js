// examples/signalling as two callers see it: `examples/run signalling`.
// Each sees the other online; alice calls bob; the offer, answer and ICE
// candidates go through the broker; the browsers connect peer to peer and a
// message crosses the data channel. A third user's token cannot read
// alice's inbox.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { WebSocket } from "../../clients/js/test/helpers.js";
import { connect } from "../../clients/js/wsbroker.js";
import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("signalling");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

test("two browsers find each other, signal through the broker and talk peer to peer", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [a, b] = [alice.page, bob.page];
    await a.locator('#lobby li[data-user="bob"]').waitFor();
    await b.locator('#lobby li[data-user="alice"]').waitFor();

    // Private inboxes: mallory's token may not read alice's.
    const config = await (await fetch(`${example.url}config.json`)).json();
    const token = (await (await fetch(`${example.url}api/token?user=mallory`)).json()).token;
    const spy = connect(config.ws, { WebSocket, token, reconnect: false });
    await assert.rejects(spy.subscribe("signal.alice").ready, { code: "forbidden" });
    await spy.close();

    await a.click('#lobby li[data-user="bob"] button');
    await a.waitForSelector('#call-state[data-state="connected"]', { timeout: 20000 });
    await b.waitForSelector('#call-state[data-state="connected"]', { timeout: 20000 });
    assert.match(await b.locator("#call-state").textContent(), /connected to alice, peer to peer/);
    await a.fill("#text", "hello over webrtc");
    await a.press("#text", "Enter");
    await b.locator("#messages .p2p", { hasText: "alice: hello over webrtc" }).waitFor();
    await b.fill("#text", "loud and clear");
    await b.press("#text", "Enter");
    await a.locator("#messages .p2p", { hasText: "bob: loud and clear" }).waitFor();
    assert.ok(await fitsWidth(b), "the call page fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "signalling");
    await alice.context.close();
    await bob.context.close();
    assert.deepEqual(errors, []);
});
