// Test helpers: the real wsbroker on a free port of 127.0.0.1, stopped by PID.
//
// WSBROKER_BIN names the binary (ctest passes $<TARGET_FILE:wsbroker>); the
// default is the normal build tree's. `ws` (a dev dependency, installed by
// `make deps-npm`) stands in for the global WebSocket that Node 20 lacks.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

import { connect } from "../wsbroker.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const clientDir = path.resolve(here, "..");
export const repoRoot = path.resolve(clientDir, "../..");

// Resolved from clients/js so that tests/browser/ can use the same install.
const requireDev = createRequire(path.join(clientDir, "package.json"));

export function requireDevDependency(name) {
    try {
        return requireDev(name);
    } catch (err) {
        throw new Error(
            `dev dependency '${name}' is missing: run 'make deps-npm' ` +
                `(npm ci --prefix clients/js): ${err.message}`,
        );
    }
}

/** The `ws` package's WebSocket class (Node 22 has a global one; Node 20 does not). */
export const WebSocket = requireDevDependency("ws").WebSocket;

export const brokerBin = process.env.WSBROKER_BIN || path.join(repoRoot, "build/broker/wsbroker");

export function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every 10 ms until it returns a truthy value; throws after `timeout` ms. */
export async function waitFor(cond, timeout = 5000, what = "condition") {
    const deadline = Date.now() + timeout;
    for (;;) {
        const value = await cond();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
        await sleep(10);
    }
}

/** Resolves with the first value `emitter` emits as `event`, or rejects after `timeout` ms. */
export function nextEvent(emitter, event, timeout = 5000) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
            off();
            reject(new Error(`timed out after ${timeout} ms waiting for event '${event}'`));
        }, timeout);
        const off = emitter.on(event, (...args) => {
            clearTimeout(timer);
            off();
            resolve(args.length > 1 ? args : args[0]);
        });
    });
}

/** Rejects when `promise` takes longer than `ms`. */
export function within(promise, ms, what = "promise") {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

function brokerEnv() {
    return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WSB_")));
}

/** True once every thread of process `pid` is stopped (state T in /proc): a
 * SIGSTOP is sent at once but each thread stops when the kernel next gets
 * to it, so a worker thread can still answer a request for a moment. */
export function allThreadsStopped(pid) {
    const tasks = fs.readdirSync(`/proc/${pid}/task`);
    return tasks.every((t) => {
        const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T");
    });
}

/**
 * A broker process. start() binds port 0 (or `port`) on 127.0.0.1 and waits for
 * the port file; stop() sends SIGTERM and waits; kill() sends SIGKILL.
 */
export class Broker {
    constructor({ args = [], port = 0, webRoot = "" } = {}) {
        this.args = args;
        this.port = port;
        this.webRoot = webRoot;
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-js-"));
        this.proc = null;
        this.stderr = "";
    }

    get url() {
        return `ws://127.0.0.1:${this.port}/ws`;
    }

    get httpUrl() {
        return `http://127.0.0.1:${this.port}`;
    }

    async start(timeout = 10000) {
        if (!fs.existsSync(brokerBin)) throw new Error(`broker binary not found: ${brokerBin} (set WSBROKER_BIN)`);
        const portFile = path.join(this.dir, "port");
        fs.rmSync(portFile, { force: true });
        this.stderr = "";
        const proc = spawn(
            brokerBin,
            [
                "--host", "127.0.0.1",
                "--port", String(this.port),
                "--port-file", portFile,
                "--web-root", this.webRoot,
                "--log-level", "warn",
                ...this.args,
            ],
            // WSB_* variables are broker config (an unknown one is a startup
            // error): the flags above say everything, so none is inherited.
            { stdio: ["ignore", "ignore", "pipe"], env: brokerEnv() },
        );
        this.proc = proc;
        proc.stderr.setEncoding("utf8");
        proc.stderr.on("data", (chunk) => {
            if (this.stderr.length < 65536) this.stderr += chunk;
        });
        const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
        proc.exited = exited;
        const deadline = Date.now() + timeout;
        for (;;) {
            if (proc.exitCode !== null || proc.signalCode !== null) {
                throw new Error(`broker exited at start (${proc.exitCode ?? proc.signalCode}): ${this.stderr}`);
            }
            try {
                const text = fs.readFileSync(portFile, "utf8").trim();
                if (text) {
                    this.port = Number(text);
                    return this;
                }
            } catch {
                /* not written yet */
            }
            if (Date.now() > deadline) {
                this.kill();
                throw new Error(`broker did not write its port file within ${timeout} ms: ${this.stderr}`);
            }
            await sleep(10);
        }
    }

    get pid() {
        return this.proc?.pid;
    }

    get running() {
        return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
    }

    /** SIGTERM by PID; waits (bounded) for exit and returns {code, signal}. */
    async stop(timeout = 8000) {
        if (!this.running) return this.proc ? this.proc.exited : { code: null, signal: null };
        process.kill(this.proc.pid, "SIGTERM");
        try {
            return await within(this.proc.exited, timeout, `broker pid ${this.proc.pid} to exit`);
        } catch (err) {
            this.kill();
            throw err;
        }
    }

    /** SIGKILL by PID (a crash, as far as clients can tell); waits for exit. */
    async kill() {
        if (!this.running) return;
        process.kill(this.proc.pid, "SIGKILL");
        await within(this.proc.exited, 5000, `broker pid ${this.proc.pid} to die`);
    }

    cleanup() {
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    /** POST /api/publish; returns {status, body}. */
    async publish(body, contentType = "application/json") {
        const res = await fetch(`${this.httpUrl}/api/publish`, {
            method: "POST",
            headers: { "Content-Type": contentType },
            body: typeof body === "string" ? body : JSON.stringify(body),
        });
        const text = await res.text();
        let json;
        try {
            json = JSON.parse(text);
        } catch {
            json = undefined;
        }
        return { status: res.status, body: json, text };
    }
}

/** Starts a broker; the caller stops it. */
export async function startBroker(options) {
    const b = new Broker(options);
    await b.start();
    return b;
}

/** The broker's /metrics as {"name{labels}": number}. */
export async function metrics(broker) {
    const text = await (await fetch(`${broker.httpUrl}/metrics`)).text();
    const out = {};
    for (const line of text.split("\n")) {
        if (!line || line.startsWith("#")) continue;
        const i = line.lastIndexOf(" ");
        out[line.slice(0, i)] = Number(line.slice(i + 1));
    }
    return out;
}

/**
 * Runs `fn(broker, open)` against a broker started with `args`; `open(url,
 * opts)` connects a client that is closed afterwards. The broker must then
 * exit with status 0.
 */
export async function withBroker(args, fn) {
    const broker = await startBroker({ args });
    const clients = [];
    try {
        await fn(broker, (url, opts) => {
            const c = connect(url, opts);
            clients.push(c);
            return c;
        });
    } finally {
        await Promise.all(clients.map((c) => c.close()));
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    }
}
