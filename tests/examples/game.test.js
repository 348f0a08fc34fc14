// examples/game as its players see it: `examples/run game` (broker + the
// referee backend), two browser contexts (bob at phone width). Each sees
// the other in the lobby (presence, join) and move; alice's own token cannot
// move bob's piece (forbidden) and bob's piece stays where it was; alice
// catches the coin and the referee's score shows on both pages; bob leaves
// and alice sees him go.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { WebSocket } from "../../clients/js/test/helpers.js";
import { connect } from "../../clients/js/wsbroker.js";
import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
let cheat;
const errors = [];

before(async () => {
    example = await runExample("game");
    browser = await launchChromium();
});

after(async () => {
    await cheat?.close();
    await browser?.close();
    await example?.stop();
});

const piece = (page, name) => page.locator(`#pieces [data-player="${name}"]`);
const cellOf = async (page, name) => {
    const el = piece(page, name);
    return { x: Number(await el.getAttribute("data-x")), y: Number(await el.getAttribute("data-y")) };
};
/** Waits until `page` shows `name`'s piece on cell {x, y}. */
const seeAt = (page, name, { x, y }) => page.locator(`#pieces [data-player="${name}"][data-x="${x}"][data-y="${y}"]`).waitFor();

test("players see each other join and move; nobody moves another's piece; the referee scores", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [a, b] = [alice.page, bob.page];

    // The lobby: each sees the other, and the other's piece.
    for (const p of [a, b]) {
        await p.locator('#players li[data-player="alice"]').waitFor();
        await p.locator('#players li[data-player="bob"]').waitFor();
    }
    await piece(a, "bob").waitFor();
    await piece(b, "alice").waitFor();
    const alice0 = await cellOf(a, "alice");
    await seeAt(b, "alice", alice0);

    // Alice moves (arrow keys); bob sees it. Bob moves (the pad); alice sees it.
    const dx = alice0.x < 10 ? 1 : -1;
    await a.keyboard.press(dx > 0 ? "ArrowRight" : "ArrowLeft");
    await seeAt(b, "alice", { x: alice0.x + dx, y: alice0.y });
    const bob0 = await cellOf(b, "bob");
    const dy = bob0.y < 6 ? 1 : -1;
    await b.click(`.pad [data-move="${dy > 0 ? "down" : "up"}"]`);
    const bob1 = { x: bob0.x, y: bob0.y + dy };
    await seeAt(a, "bob", bob1);

    // Alice's own credentials cannot move bob's piece: the broker refuses it.
    const { ws } = await (await fetch(`${example.url}config.json`)).json();
    const tokenOf = async (user) => (await (await fetch(`${example.url}api/token?user=${user}`)).json()).token;
    cheat = connect(ws, { WebSocket, getToken: () => tokenOf("alice") });
    await assert.rejects(cheat.publish("arena.pos.bob", { x: 0, y: 0 }), { code: "forbidden" });
    await assert.rejects(cheat.publish("arena.state", { coin: { x: 0, y: 0 }, scores: { alice: 99 } }), { code: "forbidden" });
    // Her own piece she may move: once that move shows on bob's page, the refused one (sent before) would have too.
    const alice2 = { x: alice0.x + dx, y: alice0.y + (alice0.y < 6 ? 1 : -1) };
    await cheat.publish("arena.pos.alice", alice2);
    await seeAt(b, "alice", alice2);
    assert.deepEqual(await cellOf(a, "bob"), bob1, "bob's piece did not move on alice's page");
    assert.deepEqual(await cellOf(b, "bob"), bob1, "bob's piece did not move on his page");
    await cheat.close();
    cheat = null;
    // Alice's page knows only its own moves: put her piece back where her page has it.
    const here = await cellOf(a, "alice");
    await a.keyboard.press(here.x > 0 ? "ArrowLeft" : "ArrowRight");
    const mine = await cellOf(a, "alice");
    await seeAt(b, "alice", mine);

    // Alice walks to the coin; the referee scores it; both pages show it.
    await a.locator("#coin[data-x]").waitFor();
    const coin = { x: Number(await a.locator("#coin").getAttribute("data-x")), y: Number(await a.locator("#coin").getAttribute("data-y")) };
    const score0 = Number(await a.locator('#players li[data-player="alice"]').getAttribute("data-score"));
    let at = mine;
    while (at.x !== coin.x) {
        await a.keyboard.press(at.x < coin.x ? "ArrowRight" : "ArrowLeft");
        at = await cellOf(a, "alice");
    }
    while (at.y !== coin.y) {
        await a.keyboard.press(at.y < coin.y ? "ArrowDown" : "ArrowUp");
        at = await cellOf(a, "alice");
    }
    for (const p of [a, b]) await p.locator(`#players li[data-player="alice"][data-score="${score0 + 1}"]`).waitFor();
    await a.waitForFunction((c) => {
        const el = document.getElementById("coin");
        return el.dataset.x !== String(c.x) || el.dataset.y !== String(c.y);
    }, coin);
    assert.ok(await fitsWidth(b), "the arena fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "game");

    // Bob leaves: alice's lobby and arena lose him.
    await bob.context.close();
    await a.locator('#players li[data-player="bob"]').waitFor({ state: "detached" });
    await piece(a, "bob").waitFor({ state: "detached" });
    assert.equal(await a.locator("#player-count").textContent(), "1");

    await alice.context.close();
    assert.deepEqual(errors, []);
});
