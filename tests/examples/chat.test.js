// examples/chat as two users see it: `examples/run chat`, two browser
// contexts signed in as alice and bob. Bob joins late and reads alice's
// earlier message (history); each sees the other online; alice sees bob
// join, type, post and leave.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("chat");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

test("two users: history for the late one, presence, join/leave, typing, messages", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const a = alice.page;
    await a.locator('#online li[data-user="alice"]', { hasText: "alice (you)" }).waitFor();
    await a.fill("#text", "hello from before bob");
    await a.click("#composer button");
    await a.locator("#messages .msg.mine", { hasText: "hello from before bob" }).waitFor();

    // Bob, at phone width: the earlier message comes from history, by alice.
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const b = bob.page;
    const old = b.locator("#messages .msg", { hasText: "hello from before bob" });
    await old.waitFor();
    assert.equal(await old.locator(".who").textContent(), "alice");
    await b.locator('#online li[data-user="alice"]').waitFor();
    assert.equal(await b.locator("#online-count").textContent(), "2");

    // Alice sees bob join.
    await a.locator("#messages .msg.system", { hasText: "bob joined" }).waitFor();
    await a.locator('#online li[data-user="bob"]').waitFor();
    assert.equal(await a.locator("#online-count").textContent(), "2");

    // Bob types: alice sees it, bob does not see himself.
    await b.locator("#text").pressSequentially("hi ali", { delay: 20 });
    await a.locator("#typing", { hasText: "bob is typing…" }).waitFor();
    assert.equal(await b.locator("#typing").textContent(), "");
    await b.click("#composer button");
    const msg = a.locator("#messages .msg", { hasText: "hi ali" });
    await msg.waitFor();
    assert.equal(await msg.locator(".who").textContent(), "bob");
    await a.waitForFunction(() => document.getElementById("typing").textContent === "");
    await b.locator("#messages .msg.mine", { hasText: "hi ali" }).waitFor();

    assert.ok(await fitsWidth(b), "the chat fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "chat");

    // Bob closes his window: alice sees him leave.
    await bob.context.close();
    await a.locator("#messages .msg.system", { hasText: "bob left" }).waitFor();
    await a.locator('#online li[data-user="bob"]').waitFor({ state: "detached" });
    assert.equal(await a.locator("#online-count").textContent(), "1");
    await alice.context.close();
    assert.deepEqual(errors, []);
});
