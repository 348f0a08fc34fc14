// The /admin dashboard in real Chromium (issue 22 item 2, PROTOCOL.md 16):
// GET /admin is 401 without the admin credential; the page refuses a wrong
// key and signs in with the right one; its charts move while a publishing
// load runs ($sys.node.*.stats); its topic and connection tables list a
// client; the disconnect button closes that client with 4008; screenshot.
//
// Every wait is on a condition (page.waitForFunction), never a pause. Env:
// WSBROKER_BIN, WSBROKER_CHROMIUM (default /usr/bin/chromium),
// WSBROKER_ARTIFACTS (where the screenshot goes).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Broker, clientDir, requireDevDependency } from "../../clients/js/test/helpers.js";

const { chromium } = requireDevDependency("playwright-core");

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.WSBROKER_ARTIFACTS || path.join(repoRoot, "build", "browser");
const WAIT = 15000;
const ADMIN_KEY = "browser-admin-key-0123456789";

// A client for the dashboard to list and disconnect: it records its close.
const VICTIM_PAGE = `<!doctype html>
<meta charset="utf-8"><title>victim</title><link rel="icon" href="data:,">
<script>
window.closedWith = null;
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === "welcome") { window.clientId = m.client_id;
    ws.send(JSON.stringify({ type: "subscribe", topic: "load.victim", id: 1 })); } };
ws.onclose = (e) => { window.closedWith = { code: e.code, reason: e.reason }; };
</script>`;

let context;
let profile;
let webRoot;
let broker;
const pageErrors = [];

before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (make deps installs Debian's chromium)`);
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-admin-"));
    fs.mkdirSync(path.join(webRoot, "js"));
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    for (const f of ["admin.html", "admin.js", "admin.css", "style.css"]) {
        fs.copyFileSync(path.join(repoRoot, "web", f), path.join(webRoot, f));
    }
    fs.writeFileSync(path.join(webRoot, "victim.html"), VICTIM_PAGE);
    broker = new Broker({
        webRoot,
        args: ["--admin-keys", ADMIN_KEY, "--sys-stats-interval", "1s", "--workers", "2",
            "--topics", JSON.stringify([{ pattern: "load.>", history: { size: 10 } }])],
    });
    await broker.start();
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1400, height: 1000 },
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        timeout: 30000,
    });
    context.setDefaultTimeout(WAIT);
});

after(async () => {
    await context?.close();
    if (broker) {
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    }
    for (const dir of [webRoot, profile]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(pageErrors, []);
});

async function openPage(name, file) {
    const page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(`${name}: pageerror: ${err.message}`));
    page.on("console", (msg) => {
        // The wrong key's 401 is logged by Chromium as a failed load: expected.
        if (msg.type() === "error" && !/status of 401/.test(msg.text())) pageErrors.push(`${name}: console.error: ${msg.text()}`);
    });
    const res = await page.goto(`${broker.httpUrl}/${file}`);
    assert.equal(res.status(), 200);
    return page;
}

test("GET /admin is 401 without the admin credential and 200 with it", async () => {
    let res = await fetch(`${broker.httpUrl}/admin`);
    assert.equal(res.status, 401);
    assert.match(await res.text(), /admin\.html/);
    res = await fetch(`${broker.httpUrl}/admin`, { headers: { Authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 200);
});

test("sign in, live charts under load, tables, disconnect, screenshot", async () => {
    const victim = await openPage("victim", "victim.html");
    await victim.waitForFunction(() => typeof window.clientId === "string");
    const clientId = await victim.evaluate(() => window.clientId);

    const page = await openPage("admin", "admin.html");
    // A wrong key is refused and the dashboard stays hidden.
    await page.fill("#admin-key", "not-the-admin-key-0123456789");
    await page.click("#login-btn");
    await page.waitForFunction(() => !document.getElementById("login-error").hidden);
    assert.match(await page.textContent("#login-error"), /401/);
    assert.equal(await page.isHidden("#dash"), true);
    // The right key signs in.
    await page.fill("#admin-key", ADMIN_KEY);
    await page.click("#login-btn");
    await page.waitForFunction(() => !document.getElementById("dash").hidden);

    // Charts move while a load runs: publish until stats samples show it
    // (three samples at least, so the screenshot has lines).
    const moved = () => page.evaluate(() => window.admin.stats >= 3 &&
        Object.entries(window.admin.series).some(([n, s]) => n.endsWith(" in") && !n.includes("/w") && s.some((v) => v > 0)));
    const deadline = Date.now() + 30000;
    let n = 0;
    while (!(await moved())) {
        assert.ok(Date.now() < deadline, "the messages chart never showed the load");
        const batch = [];
        for (let i = 0; i < 20; i++) batch.push({ topic: `load.t${i % 4}`, data: { n: n++ } });
        const res = await broker.publish(batch);
        assert.equal(res.status, 200);
    }
    const series = await page.evaluate(() => Object.keys(window.admin.series));
    assert.ok(series.some((s) => /\/w1 in$/.test(s)), `per-worker series: ${series}`);
    assert.ok(series.some((s) => s.endsWith(" connections")), `connections series: ${series}`);

    // The tables list the victim and its topic (the page refreshes them).
    await page.waitForFunction((id) => document.querySelector(`#conns tr[data-client="${id}"]`) !== null, clientId);
    await page.waitForFunction(() => [...document.querySelectorAll("#topics td code")].some((e) => e.textContent === "load.victim"));
    await page.waitForFunction(() => document.getElementById("h-status").textContent === "ok");
    // The page's own WebSocket ($sys stats) is listed too, once a refresh saw it.
    await page.waitForFunction(() => document.querySelectorAll("#conns tbody tr").length >= 2);

    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, "admin.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10000, `screenshot ${shot}`);
    console.log(`# screenshot: ${shot}`);

    // The disconnect button closes the victim with 4008.
    await page.click(`#conns button.disconnect[data-client="${clientId}"]`);
    await victim.waitForFunction(() => window.closedWith !== null);
    assert.deepEqual(await victim.evaluate(() => window.closedWith), { code: 4008, reason: "disconnected by admin" });
    await page.waitForFunction((id) => document.querySelector(`#conns tr[data-client="${id}"]`) === null, clientId);
    await victim.close();
    await page.close();
});
