// examples/support as agents and customers see it: `examples/run support`
// (broker + Flask router). A customer who comes before any agent is told
// none is online; with two agents online, two customers are routed one to
// each; a conversation goes both ways and only to its own agent.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { waitFor } from "../../clients/js/test/helpers.js";
import { WAIT, fitsWidth, launchChromium, openPage, runExample, saveScreenshot } from "./helpers.js";

let example;
let browser;
const errors = [];

before(async () => {
    example = await runExample("support");
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    await example?.stop();
});

test("conversations are routed to online agents, one each, and stay private", async () => {
    const early = await openPage(browser, example.url, { user: "eve", errors });
    await early.page.click("#start");
    await early.page.locator("#start-status", { hasText: "No agent is online" }).waitFor();
    await early.context.close();

    const ann = await openPage(browser, `${example.url}agent.html`, { user: "ann", errors });
    const ben = await openPage(browser, `${example.url}agent.html`, { user: "ben", errors });
    // The router reads presence: wait until both agents are in it, as the broker says.
    const members = async () => {
        const res = await fetch(`${example.url}config.json`);
        const { http } = await res.json();
        const p = await fetch(`${http}/api/presence?topic=support.agents`, {
            headers: { Authorization: "Bearer k-support-dev-only-0123456789" },
        });
        return (await p.json()).users;
    };
    await waitFor(async () => (await members()) >= 2, WAIT, "both agents in support.agents");

    const carl = await openPage(browser, example.url, { user: "carl", width: 390, height: 844, errors });
    await carl.page.click("#start");
    const carlAgent = await carl.page.locator("#agent-name[data-agent]").getAttribute("data-agent");
    const dana = await openPage(browser, example.url, { user: "dana", errors });
    await dana.page.click("#start");
    const danaAgent = await dana.page.locator("#agent-name[data-agent]").getAttribute("data-agent");
    assert.deepEqual([carlAgent, danaAgent].sort(), ["ann", "ben"], "one customer each");

    const agentOf = { ann, ben };
    const carls = agentOf[carlAgent].page;
    const others = agentOf[danaAgent].page;
    await carl.page.fill("#text", "my order is late");
    await carl.page.press("#text", "Enter");
    const conv = carls.locator('.conv[data-customer="carl"]');
    await conv.locator(".msg", { hasText: "my order is late" }).waitFor();
    await conv.locator("input").fill("sorry, checking now");
    await conv.locator("input").press("Enter");
    await carl.page.locator('#messages .msg[data-user="' + carlAgent + '"]', { hasText: "sorry, checking now" }).waitFor();
    await others.locator('.conv[data-customer="dana"]').waitFor();
    assert.equal(await others.locator('.conv[data-customer="carl"]').count(), 0, "carl's conversation is not on the other agent's page");
    assert.ok(await fitsWidth(carl.page), "the customer's chat fits a 390 px wide screen without sideways scrolling");
    await saveScreenshot(carls, "support");
    for (const x of [ann, ben, carl, dana]) await x.context.close();
    assert.deepEqual(errors, []);
});
