// The gallery as a whole: every folder of examples/ is a complete example
// (page, config, backend, README, screenshot, test, registered in CMake) and
// has a card on the demo page (web/index.html), whose preview loads in
// Chromium at phone width without a console error. A test run saves its
// screenshots into the build's artifacts and leaves the committed ones alone
// (`make screenshots` replaces those).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Broker, clientDir } from "../../clients/js/test/helpers.js";
import { ARTIFACTS, WAIT, launchChromium, repoRoot, saveScreenshot } from "./helpers.js";

const examplesDir = path.join(repoRoot, "examples");
const names = fs.readdirSync(examplesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== "common")
    .map((d) => d.name)
    .sort();

test("every example is complete and registered", () => {
    assert.ok(names.length >= 1);
    const cmake = fs.readFileSync(path.join(examplesDir, "CMakeLists.txt"), "utf8");
    const listed = /set\(WSB_EXAMPLES ([^)]*)\)/.exec(cmake)[1].trim().split(/\s+/).sort();
    assert.deepEqual(listed, names, "examples/CMakeLists.txt WSB_EXAMPLES lists every example");
    const index = fs.readFileSync(path.join(repoRoot, "web", "index.html"), "utf8");
    const gallery = fs.readFileSync(path.join(examplesDir, "README.md"), "utf8");
    for (const name of names) {
        for (const f of ["index.html", "app.js", "wsbroker.json", "backend.py", "README.md", "screenshot.png"]) {
            assert.ok(fs.existsSync(path.join(examplesDir, name, f)), `examples/${name}/${f}`);
        }
        JSON.parse(fs.readFileSync(path.join(examplesDir, name, "wsbroker.json"), "utf8"));
        assert.ok(fs.existsSync(path.join(repoRoot, "tests", "examples", `${name}.test.js`)), `tests/examples/${name}.test.js`);
        assert.match(index, new RegExp(`data-example="${name}"`), `web/index.html has a card for ${name}`);
        assert.match(index, new RegExp(`make example NAME=${name}<`), `web/index.html says how to run ${name}`);
        assert.match(gallery, new RegExp(`\\(${name}/\\)`), `examples/README.md links ${name}/`);
    }
});

let broker;
let browser;
let webRoot;

before(async () => {
    // The demo page's web root as the build leaves it: the client and the previews copied in.
    webRoot = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-web-"));
    fs.cpSync(path.join(repoRoot, "web"), webRoot, { recursive: true });
    fs.mkdirSync(path.join(webRoot, "js"), { recursive: true });
    fs.copyFileSync(path.join(clientDir, "wsbroker.js"), path.join(webRoot, "js", "wsbroker.js"));
    fs.mkdirSync(path.join(webRoot, "examples"), { recursive: true });
    for (const name of names) {
        fs.copyFileSync(path.join(examplesDir, name, "screenshot.png"), path.join(webRoot, "examples", `${name}.png`));
    }
    broker = new Broker({ webRoot, args: ["--config", path.join(repoRoot, "tools", "dev", "run.json")] });
    await broker.start();
    browser = await launchChromium();
});

after(async () => {
    await browser?.close();
    if (broker) {
        await broker.stop();
        broker.cleanup();
    }
    if (webRoot) fs.rmSync(webRoot, { recursive: true, force: true });
});

test("the demo page's gallery shows every example with its preview, at 390 px", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
        if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
    });
    await page.goto(`${broker.httpUrl}/`);
    await page.waitForSelector('#conn-state[data-state="open"]');
    const cards = await page.locator("#gallery .example-card").evaluateAll((els) => els.map((e) => e.dataset.example));
    assert.deepEqual([...cards].sort(), names);
    for (const name of names) {
        const img = page.locator(`#gallery [data-example="${name}"] img`);
        await img.scrollIntoViewIfNeeded();
        await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
    await context.close();
    assert.deepEqual(errors, []);
});

test("an example test's screenshot goes to the artifacts, not over the committed one", async () => {
    const committed = path.join(examplesDir, "chat", "screenshot.png");
    const before = fs.readFileSync(committed);
    const artifact = path.join(ARTIFACTS, "chat.png");
    fs.rmSync(artifact, { force: true });
    const context = await browser.newContext({ viewport: { width: 200, height: 100 } });
    const page = await context.newPage();
    await page.setContent("<!doctype html><title>not the chat example</title><p>a test page</p>");
    const flag = process.env.WSBROKER_UPDATE_SCREENSHOTS;
    delete process.env.WSBROKER_UPDATE_SCREENSHOTS; // as `make test` runs it
    try {
        assert.deepEqual(await saveScreenshot(page, "chat"), [artifact]);
    } finally {
        if (flag !== undefined) process.env.WSBROKER_UPDATE_SCREENSHOTS = flag;
        await context.close();
    }
    assert.ok(fs.statSync(artifact).size > 0, `${artifact} written`);
    assert.ok(fs.readFileSync(committed).equals(before), "examples/chat/screenshot.png is untouched");
});
