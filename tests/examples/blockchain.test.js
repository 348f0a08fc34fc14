// examples/blockchain as an explorer user sees it: `examples/run blockchain`
// (broker + backend mining a deterministic block every 2 s into the stream
// chain.>). A watcher (the JS client in Node) follows the chain as the
// truth. Alice's explorer loses its network for a few blocks and, back,
// lists every block once, in order, up to the head; watching an address
// lists only that address's transactions, every one the chain had, then
// live ones; bob opens the explorer at phone width. Then carol is away
// while the log is trimmed past what she had: back, the page says what was
// lost and goes on.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

import { WebSocket, waitFor } from "../../clients/js/test/helpers.js";
import { connect } from "../../clients/js/wsbroker.js";
import { fitsWidth, launchChromium, openPage, repoRoot, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
let watcher;
const errors = [];

before(async () => {
    example = await runExample("blockchain");
    browser = await launchChromium();
});

after(async () => {
    await watcher?.close();
    await browser?.close();
    await example?.stop();
});

const heights = (page) => page.locator("#blocks li[data-height]").evaluateAll((els) => els.map((e) => Number(e.dataset.height)));

/** Newest first, each once, none missing between the newest and the oldest shown. */
function assertChain(list, what) {
    assert.ok(list.length > 0, `${what}: no blocks`);
    assert.equal(new Set(list).size, list.length, `${what}: a block twice: ${list}`);
    assert.deepEqual(list, list.map((_, i) => list[0] - i), `${what}: not every block, newest first: ${list}`);
}

test("the explorer lists every block once across a reconnect; an address filter shows its transactions", async () => {
    const config = await (await fetch(`${example.url}config.json`)).json();
    const tokenOf = async (user) => (await (await fetch(`${example.url}api/token?user=${user}`)).json()).token;
    watcher = connect(config.ws, { WebSocket, getToken: () => tokenOf("watcher") });
    let tip = 0;
    const seenTxs = []; // every transaction since the watcher subscribed
    await watcher.subscribe("chain.block", (m) => {
        tip = Math.max(tip, m.data.height);
    }).ready;
    await watcher.subscribe("chain.tx.>", (m) => seenTxs.push(m.data)).ready;
    // Readers may not write into the chain.
    await assert.rejects(watcher.publish("chain.block", { height: 1e9 }), { code: "forbidden" });

    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const a = alice.page;
    await waitFor(async () => (await heights(a)).length >= 3, 30000, "three blocks on alice's page");
    await a.locator("#head-height[data-height]").waitFor();
    assertChain(await heights(a), "alice, at first");

    // Alice's network goes for at least two blocks; back, every block once, in order.
    await alice.context.setOffline(true);
    await a.waitForSelector('#conn-state:not([data-state="open"])', { timeout: 30000 });
    const before = tip;
    await waitFor(() => tip >= before + 2, 30000, "two blocks mined while alice is offline");
    await alice.context.setOffline(false);
    await a.waitForSelector('#conn-state[data-state="open"]', { timeout: 30000 });
    const target = tip;
    await waitFor(async () => (await heights(a))[0] >= target, 15000, `alice's list up to block ${target}`);
    assertChain(await heights(a), "alice, after the reconnect");
    // The head (a last value) is at least the newest block listed.
    const newest = (await heights(a))[0];
    await waitFor(async () => Number(await a.locator("#head-height").getAttribute("data-height")) >= newest, 10000, "the head");

    // Watch an account of the head block (a click on its address).
    const address = await a.locator("#head-accounts button.addr").first().getAttribute("title").then((t) => t.replace("watch ", ""));
    await a.locator("#head-accounts button.addr").first().click();
    assert.equal(await a.inputValue("#address"), address);
    await a.locator("#txs li[data-tx]").first().waitFor();
    // Every transaction of the address the watcher saw shows (the replay),
    // and then a new one, live.
    const mine = (t) => t.from === address || t.to === address;
    const known = seenTxs.filter(mine).map((t) => t.id);
    assert.ok(known.length > 0, "the head block's account has transactions");
    for (const id of known) await a.locator(`#txs li[data-tx="${id}"]`).waitFor();
    const count = seenTxs.length;
    await waitFor(() => seenTxs.slice(count).some(mine), 60000, `a new transaction of ${address}`);
    const fresh = seenTxs.slice(count).find(mine);
    await a.locator(`#txs li[data-tx="${fresh.id}"]`).waitFor();
    const rows = await a.locator("#txs li[data-tx]").evaluateAll((els) => els.map((e) => ({ from: e.dataset.from, to: e.dataset.to })));
    assert.ok(rows.every(mine), `only ${address}'s transactions: ${JSON.stringify(rows)}`);
    await saveScreenshot(a, "blockchain");

    // Bob opens the explorer at phone width: the last 20 blocks at once, in order.
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    await waitFor(async () => (await heights(bob.page)).length >= Math.min(20, tip), 15000, "bob's last 20 blocks");
    assertChain(await heights(bob.page), "bob");
    assert.ok(await fitsWidth(bob.page), "the explorer fits a 390 px wide screen without sideways scrolling");

    await alice.context.close();
    await bob.context.close();
    assert.deepEqual(errors, []);
});

/** A dev token signed with the example's own (development-only) secret. */
function mint(sub, claims) {
    const { jwt_secret: secret } = JSON.parse(fs.readFileSync(path.join(repoRoot, "examples", "blockchain", "wsbroker.json"), "utf8")).auth;
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const signing = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: now, exp: now + 600, ...claims })}`;
    return `${signing}.${crypto.createHmac("sha256", secret).update(signing).digest("base64url")}`;
}

test("an explorer away while the log was trimmed is told what it lost, then goes on", async () => {
    const stream = JSON.parse(fs.readFileSync(path.join(repoRoot, "examples", "blockchain", "wsbroker.json"), "utf8"))
        .topics.find((r) => r.pattern === "chain.>").stream;
    const carol = await openPage(browser, example.url, { user: "carol", errors });
    const c = carol.page;
    await waitFor(async () => (await heights(c)).length >= 2, 30000, "two blocks on carol's page");
    await carol.context.setOffline(true);
    await c.waitForSelector('#conn-state:not([data-state="open"])', { timeout: 30000 });
    // Another writer fills the stream past its size: what carol had not seen is trimmed.
    const { ws } = await (await fetch(`${example.url}config.json`)).json();
    const filler = connect(ws, { WebSocket, token: mint("filler", { subscribe: [], publish: ["chain.noise"] }) });
    try {
        for (let i = 0; i < stream.size + 100; i += 100) {
            await Promise.all(Array.from({ length: 100 }, (_, j) => filler.publish("chain.noise", { i: i + j })));
        }
    } finally {
        await filler.close();
    }
    await carol.context.setOffline(false);
    await c.waitForSelector('#conn-state[data-state="open"]', { timeout: 30000 });
    await c.locator("#blocks li.gap").waitFor({ timeout: 15000 });
    await c.locator("#banner", { hasText: "trimmed from the log" }).waitFor();
    assert.equal(await c.locator("#blocks li.gap").count(), 1);
    // Blocks mined after she is back come on top of the gap, in order.
    const above = async () => c.locator("#blocks li").evaluateAll((els) => {
        const out = [];
        for (const e of els) {
            if (e.classList.contains("gap")) break;
            out.push(Number(e.dataset.height));
        }
        return out;
    });
    await waitFor(async () => (await above()).length >= 2, 30000, "two blocks after the gap");
    assertChain(await above(), "carol, after the gap");
    await carol.context.close();
    assert.deepEqual(errors, []);
});
