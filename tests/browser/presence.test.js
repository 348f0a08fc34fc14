// The demo page's chat with `make run`'s configuration (tools/dev/run.json:
// presence, join/leave and publisher identity on chat.>): two browsers, each
// signed in with a dev token from tools/dev/dev_token.py, see each other
// online and typing; when one closes, the other sees it leave. Real Chromium
// (Debian's), driven by playwright-core, as in demo.test.js.
//
// Env: WSBROKER_BIN, WSBROKER_CHROMIUM (default /usr/bin/chromium),
// WSBROKER_ARTIFACTS (screenshots).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir, repoRoot, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.WSBROKER_ARTIFACTS || path.join(repoRoot, "build", "browser");
const WAIT = 10000;

let broker;
let browser;
let webRoot;
const pageErrors = [];

/** A dev token for `name`, minted as the README says (tools/dev/dev_token.py). */
function devToken(name) {
    const script = path.join(repoRoot, "tools", "dev", "dev_token.py");
    return execFileSync("/usr/bin/python3", [script, name], { encoding: "utf8" }).trim();
}

/** A page in its own browser context (its own localStorage), signed in as `name`. */
async function signedIn(name) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: pageerror: ${err.message}`));
    page.on("console", (msg) => {
        if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
            pageErrors.push(`${name}: console.error: ${msg.text()}`);
        }
    });
    await page.goto(`${broker.httpUrl}/#room=lobby`);
    await page.waitForSelector('#conn-state[data-state="open"]');
    assert.match(await page.locator("#token-status").textContent(), /no token/);
    await page.fill("#dev-token", devToken(name));
    await page.click("#token-use"); // stores it and reloads
    await page.locator("#token-status", { hasText: `signed in as ${name}` }).waitFor();
    assert.equal(await page.inputValue("#chat-name"), name);
    return { context, page };
}

const online = (page, name) => page.locator(`#chat-online li[data-user="${name}"]`);

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-"));
    fs.cpSync(path.join(repoRoot, "web"), webRoot, { recursive: true });
    fs.mkdirSync(path.join(webRoot, "js"), { recursive: true });
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    broker = new Broker({ webRoot, args: ["--config", path.join(repoRoot, "tools", "dev", "run.json")] });
    await broker.start();
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        timeout: 30000,
    });
});

after(async () => {
    await browser?.close();
    if (broker) {
        await broker.stop();
        broker.cleanup();
    }
    if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

test("two signed-in pages see each other online and typing; a closed one leaves", async () => {
    const alice = await signedIn("alice");
    const bob = await signedIn("bob");
    const a = alice.page;
    const b = bob.page;

    // Presence: each lists both, itself marked.
    await online(a, "bob").waitFor();
    await online(b, "alice").waitFor();
    assert.match(await online(a, "alice").textContent(), /alice \(you\)/);
    assert.equal(await a.locator("#chat-online-count").textContent(), "2");

    // Typing: bob types, alice sees it (and bob does not see himself).
    await b.locator("#chat-text").pressSequentially("hello al", { delay: 20 });
    await a.locator("#chat-typing", { hasText: "bob is typing…" }).waitFor();
    assert.equal(await b.locator("#chat-typing").textContent(), "");
    await b.click("#chat-form button");
    // The message is bob's by the broker's stamp; sending ends the indicator.
    const msg = a.locator("#chat-messages .msg", { hasText: "hello al" });
    await msg.waitFor();
    assert.equal(await msg.locator(".who").textContent(), "bob");
    assert.equal(await msg.locator(".verified").count(), 1);
    await a.waitForFunction(() => document.getElementById("chat-typing").textContent === "");
    await b.locator("#chat-messages .msg.mine", { hasText: "hello al" }).waitFor();

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await a.screenshot({ path: path.join(ARTIFACTS, "presence.png"), fullPage: true });

    // Bob closes his page: alice sees him leave.
    await bob.context.close();
    await online(a, "bob").waitFor({ state: "detached" });
    assert.equal(await a.locator("#chat-online-count").textContent(), "1");
    await alice.context.close();
    assert.deepEqual(pageErrors, []);
});

test("a typist who goes quiet stops showing after the idle delay, without sending", async () => {
    const carol = await signedIn("carol");
    const dan = await signedIn("dan");
    await online(carol.page, "dan").waitFor();
    await dan.page.locator("#chat-text").pressSequentially("hm", { delay: 20 });
    const typing = carol.page.locator("#chat-typing", { hasText: "dan is typing…" });
    await typing.waitFor();
    // dan's page sends typing:false after 3 s without a key; carol's clears.
    await carol.page.waitForFunction(() => document.getElementById("chat-typing").textContent === "", null, {
        timeout: 15000,
    });
    await carol.context.close();
    await dan.context.close();
    assert.deepEqual(pageErrors, []);
});
