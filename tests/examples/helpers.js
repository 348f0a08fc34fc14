// The examples' browser tests: start an example exactly as a user does
// (`examples/run NAME`, which starts the broker with the example's config and
// its backend), then drive its page in real Chromium (Debian's) through
// playwright-core, as tests/browser/ does.
//
// Env: WSBROKER_BIN (the broker examples/run starts), WSBROKER_CHROMIUM
// (default /usr/bin/chromium), WSBROKER_ARTIFACTS (where each test saves its
// screenshot; ctest sets a folder of the build, else a temporary folder),
// WSBROKER_UPDATE_SCREENSHOTS=1 (also replace examples/NAME/screenshot.png,
// the gallery's committed preview: `make screenshots`).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { repoRoot, requireDevDependency, within } from "../../clients/js/test/helpers.js";

export { repoRoot };
export const { chromium } = requireDevDependency("playwright-core");
export const CHROMIUM = process.env.WSBROKER_CHROMIUM || "/usr/bin/chromium";
export const WAIT = 10000;

function cleanEnv() {
    return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WSB_")));
}

/** `examples/run NAME --port 0`; resolves with {url, stop()} once it printed its URL. */
export async function runExample(name) {
    const proc = spawn(path.join(repoRoot, "examples", "run"), [name, "--port", "0"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: cleanEnv(),
    });
    let out = "";
    const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    const url = await within(
        new Promise((resolve, reject) => {
            const onData = (chunk) => {
                out += chunk;
                const m = /open (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
                if (m) resolve(m[1]);
            };
            proc.stdout.setEncoding("utf8").on("data", onData);
            proc.stderr.setEncoding("utf8").on("data", onData);
            exited.then(({ code, signal }) => reject(new Error(`examples/run ${name} exited (${code ?? signal}): ${out}`)));
        }),
        30000,
        `examples/run ${name} to print its URL`,
    );
    return {
        url,
        output: () => out,
        async stop() {
            if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, "SIGTERM");
            const { code } = await within(exited, 10000, `examples/run ${name} (pid ${proc.pid}) to exit`);
            assert.equal(code, 0, `examples/run ${name} exit status; output: ${out}`);
        },
    };
}

export async function launchChromium() {
    return chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        timeout: 30000,
    });
}

/**
 * A page in its own browser context (own storage: another user), at `width`
 * px, that records page errors and console errors into `errors`. Loads `url`
 * and, given `user`, signs in with that name.
 */
export async function openPage(browser, url, { user, width = 1280, height = 860, errors }) {
    const context = await browser.newContext({ viewport: { width, height } });
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    const who = user ?? "anonymous";
    page.on("pageerror", (err) => errors.push(`${who}: pageerror: ${err.message}`));
    page.on("console", (msg) => {
        // Chromium itself logs failed network attempts while a test has cut
        // the network (setOffline): not the page's errors.
        if (msg.type() === "error" && !/ERR_INTERNET_DISCONNECTED|WebSocket connection to .* failed/.test(msg.text())) {
            errors.push(`${who}: console.error: ${msg.text()}`);
        }
    });
    await page.goto(url);
    if (user) {
        await page.fill("#signin input", user);
        await page.click("#signin button");
    }
    await page.waitForSelector('#conn-state[data-state="open"]');
    return { context, page };
}

/** True when the page does not scroll sideways (it fits its viewport). */
export async function fitsWidth(page) {
    return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
}

export const ARTIFACTS = process.env.WSBROKER_ARTIFACTS || path.join(os.tmpdir(), "wsbroker-examples");

/** Writes `png` to `file` atomically: the gallery test may be reading the
 * committed screenshot at the same time (ctest -j). */
function writeAtomically(file, png) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, png);
    fs.renameSync(tmp, file);
}

/**
 * Saves the page as ARTIFACTS/NAME.png, and as examples/NAME/screenshot.png
 * (the committed preview) only with WSBROKER_UPDATE_SCREENSHOTS=1, so a test
 * run leaves the tree as it was. Returns the paths written.
 */
export async function saveScreenshot(page, name) {
    const png = await page.screenshot({ type: "png", animations: "disabled" });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const written = [path.join(ARTIFACTS, `${name}.png`)];
    if (process.env.WSBROKER_UPDATE_SCREENSHOTS === "1") written.push(path.join(repoRoot, "examples", name, "screenshot.png"));
    for (const file of written) writeAtomically(file, png);
    return written;
}
