// examples/whiteboard as its users see it: `examples/run whiteboard`, alice
// and bob in two browser contexts. Alice draws two strokes with the mouse:
// bob's board gets them (and alice's cursor); carol, who opens the board
// afterwards at phone width, sees the same drawing from history; a clear
// empties every board.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("whiteboard");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

async function draw(page, points) {
    const box = await page.locator("#board").boundingBox();
    const at = ([x, y]) => [box.x + x * box.width, box.y + y * box.height];
    await page.mouse.move(...at(points[0]));
    await page.mouse.down();
    for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 4 });
    await page.mouse.up();
}

// The canvas pixel at (x, y) in 0..1 is not the background (#f8fafc).
const inked = (page, x, y) => page.evaluate(([fx, fy]) => {
    const c = document.getElementById("board");
    const [r, g, b] = c.getContext("2d").getImageData(Math.round(fx * c.width), Math.round(fy * c.height), 1, 1).data;
    return !(r === 0 && g === 0 && b === 0) && !(r > 240 && g > 240 && b > 240);
}, [x, y]);

test("strokes reach the other board, a late board replays them, a clear clears all", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", errors });
    const [a, b] = [alice.page, bob.page];

    await draw(a, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.2]]);
    await draw(a, [[0.6, 0.7], [0.9, 0.7]]);
    await b.waitForSelector('#board[data-strokes="2"]');
    assert.ok(await inked(b, 0.3, 0.4), "bob's board shows alice's first stroke");
    assert.ok(await inked(b, 0.75, 0.7), "and her second");
    assert.ok(!(await inked(b, 0.8, 0.1)), "and nothing where she did not draw");
    await b.locator('#cursors .cursor[data-user="alice"]').waitFor();
    await saveScreenshot(b, "whiteboard");

    const carol = await openPage(browser, example.url, { user: "carol", width: 390, height: 844, errors });
    const c = carol.page;
    await c.waitForSelector('#board[data-strokes="2"]');
    assert.ok(await inked(c, 0.3, 0.4));
    assert.ok(await fitsWidth(c), "the board fits a 390 px wide screen without sideways scrolling");

    await b.click("#clear");
    for (const p of [a, b, c]) await p.waitForSelector('#board[data-strokes="0"]');
    assert.ok(!(await inked(a, 0.3, 0.4)));
    for (const x of [alice, bob, carol]) await x.context.close();
    assert.deepEqual(errors, []);
});
