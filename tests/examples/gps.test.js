// examples/gps as a dispatcher sees it: `examples/run gps` (broker + backend
// driving three buses). A driver (the JS client in Node, as a phone app
// would be) publishes its own vehicle; the dispatcher's map loses its
// network while the driver moves on and, back, shows the latest position
// (one update, not the backlog); a page opened later shows every vehicle at
// once, the parked truck included (last value on wildcards).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { WebSocket, waitFor } from "../../clients/js/test/helpers.js";
import { connect } from "../../clients/js/wsbroker.js";
import { fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
let driver;
const errors = [];

before(async () => {
    example = await runExample("gps");
    browser = await launchChromium();
});

after(async () => {
    await driver?.close();
    await browser?.close();
    await example?.stop();
});

const marker = (page, id) => page.locator(`#markers [data-vehicle="${id}"]`);
const at = async (page, id) => {
    const el = marker(page, id);
    return { lat: Number(await el.getAttribute("data-lat")), lon: Number(await el.getAttribute("data-lon")) };
};

test("the map shows each vehicle's latest position, after a reconnect and on a new page", async () => {
    const config = await (await fetch(`${example.url}config.json`)).json();
    const tokenOf = async (user) => (await (await fetch(`${example.url}api/token?user=${user}`)).json()).token;
    driver = connect(config.ws, { WebSocket, getToken: () => tokenOf("truck-7") });
    // The driver's token publishes its own vehicle only.
    await assert.rejects(driver.publish("fleet.vehicle.bus-1", { lat: 0, lon: 0 }), { code: "forbidden" });
    await driver.publish("fleet.vehicle.truck-7", { lat: 52.515, lon: 13.39, heading: 0, speed: 0, ts: Date.now() });

    const alice = await openPage(browser, example.url, { user: "alice", errors });
    const a = alice.page;
    for (const id of ["bus-1", "bus-2", "bus-3", "truck-7"]) await marker(a, id).waitFor();
    assert.deepEqual(await at(a, "truck-7"), { lat: 52.515, lon: 13.39 });
    const updates = () => a.locator('#vehicles li[data-vehicle="truck-7"]').getAttribute("data-updates");
    assert.equal(await updates(), "1");

    // The dispatcher's network goes; the truck drives on (30 positions); back online,
    // the map shows where it is now, from one message, not the 30.
    await alice.context.setOffline(true);
    await a.waitForSelector('#conn-state:not([data-state="open"])', { timeout: 30000 });
    let last;
    for (let i = 1; i <= 30; i++) {
        last = { lat: 52.515 + i * 0.0002, lon: 13.39 + i * 0.0003 };
        await driver.publish("fleet.vehicle.truck-7", { ...last, heading: 45, speed: 40, ts: Date.now() });
    }
    last = { lat: Number(last.lat.toFixed(6)), lon: Number(last.lon.toFixed(6)) };
    await driver.publish("fleet.vehicle.truck-7", { ...last, heading: 45, speed: 0, ts: Date.now() });
    await alice.context.setOffline(false);
    await a.waitForSelector('#conn-state[data-state="open"]', { timeout: 30000 });
    await waitFor(async () => (await at(a, "truck-7")).lat === last.lat, 10000, "the truck's latest position on the map");
    assert.deepEqual(await at(a, "truck-7"), last);
    assert.equal(await updates(), "2", "one update after the reconnect: the last value, not the backlog");
    await saveScreenshot(a, "gps");

    // A page opened now, at phone width: every vehicle at once, the parked truck where it stopped.
    const bob = await openPage(browser, example.url, { user: "bob", width: 390, height: 844, errors });
    for (const id of ["bus-1", "bus-2", "bus-3", "truck-7"]) await marker(bob.page, id).waitFor();
    assert.deepEqual(await at(bob.page, "truck-7"), last);
    assert.equal(await bob.page.locator('#vehicles li[data-vehicle="truck-7"]').getAttribute("data-updates"), "1");
    assert.ok(await fitsWidth(bob.page), "the map fits a 390 px wide screen without sideways scrolling");

    await alice.context.close();
    await bob.context.close();
    assert.deepEqual(errors, []);
});
