// wsbroker.d.ts against the module it describes: every export, class member,
// option, event and error code declared exists at run time, and what the
// module exports, accepts, emits and raises is declared; the broker's error
// codes are PROTOCOL.md section 7's.

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import * as wsb from "../wsbroker.js";
import { clientDir, repoRoot } from "./helpers.js";

const dts = fs.readFileSync(path.join(clientDir, "wsbroker.d.ts"), "utf8");
const source = fs.readFileSync(path.join(clientDir, "wsbroker.js"), "utf8");

/** The body of `export declare class NAME ... {` or `export interface NAME {` (one level of braces). */
function body(kind, name) {
    const start = dts.search(new RegExp(`^export (?:declare )?${kind} ${name}\\b[^{]*\\{`, "m"));
    assert.ok(start >= 0, `${kind} ${name} not in wsbroker.d.ts`);
    let depth = 0;
    for (let i = dts.indexOf("{", start); i < dts.length; i++) {
        if (dts[i] === "{") depth++;
        else if (dts[i] === "}" && --depth === 0) return dts.slice(dts.indexOf("{", start) + 1, i);
    }
    throw new Error(`unbalanced ${name}`);
}

/** Top-level member names of a class or interface body (nested braces skipped). */
function members(text) {
    const names = new Set();
    let depth = 0;
    for (const line of text.split("\n")) {
        if (depth === 0) {
            const m = line.match(/^\s{4}(?:readonly\s+)?([A-Za-z_]\w*)\??\s*[(:<]/);
            if (m && m[1] !== "constructor") names.add(m[1]);
        }
        for (const ch of line) depth += ch === "{" ? 1 : ch === "}" ? -1 : 0;
    }
    return names;
}

/** The string literals of `export type NAME = | "a" | "b";`. */
function union(name) {
    const code = dts.replace(/\/\/.*$/gm, ""); // comments may hold a ';'
    const m = code.match(new RegExp(`export type ${name} =([^;]*);`));
    assert.ok(m, `type ${name} not in wsbroker.d.ts`);
    return new Set([...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]));
}

/** Keys of the object literal after `marker` in wsbroker.js (one level). */
function sourceKeys(marker) {
    const start = source.indexOf(marker);
    assert.ok(start >= 0, marker);
    const text = source.slice(start + marker.length, source.indexOf("\n});", start));
    return new Set([...text.matchAll(/^\s{4}([A-Za-z]\w*):/gm)].map((m) => m[1]));
}

test("every value the d.ts exports exists, and the module exports nothing undeclared", () => {
    const declared = new Set([...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]));
    assert.match(dts, /^export default connect;$/m);
    for (const name of declared) assert.ok(name in wsb, `d.ts declares ${name}; the module lacks it`);
    for (const name of Object.keys(wsb)) {
        if (name !== "default") assert.ok(declared.has(name), `the module exports ${name}; the d.ts does not declare it`);
    }
    assert.equal(wsb.default, wsb.connect);
    assert.equal(wsb.PROTOCOL_VERSION, 1);
    assert.deepEqual(Object.values(wsb.State), [...union("ConnectionState")]);
});

test("Connection and Subscription have every declared member, and every public one is declared", async () => {
    // A socket that never opens: enough to construct both classes.
    class Inert {
        constructor() {
            this.readyState = 0;
        }
        send() {}
        close() {}
    }
    const c = wsb.connect("ws://127.0.0.1:1/ws", { WebSocket: Inert, reconnect: false });
    const s = c.subscribe("x.y", () => {});
    const emitterDecl = dts.slice(dts.indexOf("declare class Emitter")).split("\n}\n")[0];
    const emitter = members(emitterDecl.slice(emitterDecl.indexOf("\n"))); // the members, not the header
    for (const [name, obj] of [["Connection", c], ["Subscription", s]]) {
        const declared = new Set([...members(body("class", name)), ...emitter]);
        for (const m of declared) assert.ok(m in obj, `${name}.${m} is declared but missing`);
        const actual = new Set([...Object.keys(obj), ...Object.getOwnPropertyNames(Object.getPrototypeOf(obj))]);
        for (const p of Object.getOwnPropertyNames(Object.getPrototypeOf(Object.getPrototypeOf(obj)))) actual.add(p);
        for (const m of actual) {
            if (m === "constructor" || m.startsWith("_")) continue; // _x: internal, between the two classes
            assert.ok(declared.has(m), `${name}.${m} exists but is not in wsbroker.d.ts`);
        }
    }
    assert.deepEqual(new Set(Object.keys(c.stats)), members(body("class", "Connection").match(/stats: \{([\s\S]*?)\};/)[1].replace(/^ {8}/gm, "    ")));
    await c.close();
});

test("options: ConnectOptions and ReconnectOptions are the client's defaults", () => {
    assert.deepEqual(members(body("interface", "ConnectOptions")), sourceKeys("const DEFAULTS = Object.freeze({"));
    const reconnect = source.match(/reconnect: \{([^}]*)\}/)[1];
    assert.deepEqual(members(body("interface", "ReconnectOptions")), new Set([...reconnect.matchAll(/(\w+):/g)].map((m) => m[1])));
});

test("events the client emits are declared", () => {
    const emitted = new Set([...source.matchAll(/_emit\("(\w+)"/g)].map((m) => m[1]));
    const declared = new Set([...members(body("interface", "ConnectionEvents")), ...members(body("interface", "SubscriptionEvents"))]);
    assert.deepEqual([...emitted].filter((e) => !declared.has(e)), []);
    assert.deepEqual([...declared].filter((e) => !emitted.has(e)), []);
});

test("error codes: the broker's are PROTOCOL.md section 7's; the client's cover every one it raises", () => {
    const protocol = fs.readFileSync(path.join(repoRoot, "protocol", "PROTOCOL.md"), "utf8");
    const section = protocol.split("\n## 7. Error codes\n")[1].split("\n## ")[0];
    const documented = new Set([...section.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]));
    assert.ok(documented.size >= 10, [...documented].join());
    assert.deepEqual(union("BrokerErrorCode"), documented);
    const raised = new Set([...source.matchAll(/new WsbrokerError\(\s*"(\w+)"/g)].map((m) => m[1]));
    const declared = new Set([...union("BrokerErrorCode"), ...union("ClientErrorCode")]);
    assert.deepEqual([...raised].filter((code) => !declared.has(code)), []);
});
