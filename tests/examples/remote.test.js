// examples/remote as its two users see it: `examples/run remote`, a device
// page (lamp-1) and an operator console in two browser contexts. The
// operator switches the lamp on (request/reply: the lamp lights up, the
// console shows its answer); the device page closes and the next command
// says "device offline" from the broker's no_responders (at once, not the
// request's 5 s timeout).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("remote");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

test("the operator commands a device; a closed device is offline at once", async () => {
    const device = await openPage(browser, `${example.url}device.html`, { user: "lamp-1", errors });
    const d = device.page;
    await d.locator("#lamp-title", { hasText: "lamp-1" }).waitFor();
    assert.equal(await d.locator("#lamp").getAttribute("data-on"), "false");

    const operator = await openPage(browser, example.url, { user: "olivia", width: 390, height: 844, errors });
    const o = operator.page;
    // The lamp's last reported state is there on opening (history 1 on device.*.state).
    const lamp = o.locator('#devices li[data-device="lamp-1"]');
    await lamp.locator(".state", { hasText: "off" }).waitFor();

    await lamp.locator('button[data-op="on"]').click();
    await d.waitForSelector('#lamp[data-on="true"]');
    await d.locator("#heard li", { hasText: "olivia" }).waitFor();
    const ok = o.locator('#log li[data-device="lamp-1"][data-result="ok"]').first();
    await ok.waitFor();
    assert.match(await ok.textContent(), /lamp-1 on.*on \(\d+ ms\)/);
    assert.ok(await fitsWidth(o), "the console fits a 390 px wide screen without sideways scrolling");

    // The device goes away: the next command is "device offline" from the
    // broker's no_responders (not the request's 5 s timeout, logged as "timeout").
    await device.context.close();
    await lamp.locator('button[data-op="toggle"]').click();
    const offline = o.locator('#log li[data-device="lamp-1"][data-result="no_responders"]');
    await offline.waitFor();
    assert.match(await offline.textContent(), /device offline/);
    assert.equal(await lamp.getAttribute("data-online"), "false");

    // A device id nobody runs is offline too.
    await o.fill("#direct-id", "lamp-9");
    await o.click("#direct button");
    await o.locator('#log li[data-device="lamp-9"][data-result="no_responders"]').waitFor();
    await o.setViewportSize({ width: 1280, height: 860 });
    await saveScreenshot(o, "remote");
    await operator.context.close();
    assert.deepEqual(errors, []);
});
