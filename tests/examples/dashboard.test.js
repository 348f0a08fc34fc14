// examples/dashboard as its viewers see it: `examples/run dashboard` (broker
// + Django backend). An order saved through Django (its post_save signal
// publishes it) appears on every open dashboard with the new totals; the
// broker's own $sys statistics show the open connections; a dashboard
// opened later starts with the latest orders (history).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("dashboard");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

async function order(page, customer, amount) {
    await page.fill("#order-customer", customer);
    await page.fill("#order-amount", amount);
    await page.click("#order button");
    await page.locator("#order-status", { hasText: "saved." }).waitFor();
}

test("Django saves publish to every dashboard; $sys shows the broker; late dashboards start full", async () => {
    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    const [a, b] = [alice.page, bob.page];

    // $sys.node.<id>.stats: both dashboards' connections at least (stats come every second).
    await a.waitForFunction(() => Number(document.getElementById("kpi-connections").textContent) >= 2);

    await order(b, "acme", "120.50");
    await order(b, "globex", "79.50");
    for (const p of [a, b]) {
        await p.locator("#kpi-orders", { hasText: "2" }).waitFor();
        assert.equal(await p.locator("#kpi-revenue").textContent(), "200.00");
        assert.deepEqual(await p.locator("#orders li").evaluateAll((els) => els.map((e) => e.dataset.order)), ["2", "1"]);
    }
    assert.ok(await fitsWidth(b), "the dashboard fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(a, "dashboard");

    const carol = await openPage(browser, example.url, { user: "carol", errors });
    await carol.page.locator("#kpi-orders", { hasText: "2" }).waitFor();
    assert.equal(await carol.page.locator("#kpi-revenue").textContent(), "200.00");
    assert.equal(await carol.page.locator("#orders li").count(), 2);
    for (const c of [alice, bob, carol]) await c.context.close();
    assert.deepEqual(errors, []);
});
