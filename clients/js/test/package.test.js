// The client as an npm package (issue 22, item 5): `npm pack` gives a tarball
// with exactly the ES module, its types and the README; installed offline
// into a fresh project, `import ... from "wsbroker-client"` runs in Node and a
// TypeScript program using it type-checks with tsc (strict, NodeNext), while
// a misuse of the API is a type error (the types are really applied).

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { clientDir } from "./helpers.js";

const pkg = JSON.parse(fs.readFileSync(path.join(clientDir, "package.json"), "utf8"));
const tsc = path.join(clientDir, "node_modules", "typescript", "bin", "tsc");

function npm(args, cwd, cache) {
    const env = { ...process.env, npm_config_cache: cache, npm_config_update_notifier: "false" };
    return execFileSync("npm", args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

const APP = `import connect, { Connection, type Message, type PublishAck, WsbrokerError } from "wsbroker-client";

interface Price { bid: number }

export async function run(url: string): Promise<number> {
    const c: Connection = connect(url, { token: "t", reconnect: false });
    const sub = c.subscribe<Price>("prices.*.usd", (m: Message<Price>) => {
        const bid: number = m.data.bid;
        void bid;
    });
    await sub.ready;
    const ack: PublishAck = await c.publish("prices.btc.usd", { bid: 1 });
    try {
        await c.presence("chat.room1");
    } catch (e) {
        if (e instanceof WsbrokerError) console.log(e.code);
    }
    await c.close();
    return ack.seq;
}
`;

// A misuse that only a typed import can catch.
const BAD = `import { connect } from "wsbroker-client";
const c = connect("ws://127.0.0.1:1/ws");
const n: number = c.publish("a.b", 1);
`;

test("npm pack holds the module, its types and README; tsc checks an installed copy", (t) => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wsb-pack-"));
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const cache = path.join(tmp, "cache");

    const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", tmp], clientDir, cache));
    const files = packed[0].files.map((f) => f.path).sort();
    assert.deepEqual(files, ["README.md", "package.json", "wsbroker.d.ts", "wsbroker.js"]);
    const tarball = path.join(tmp, packed[0].filename);
    assert.equal(packed[0].filename, `${pkg.name}-${pkg.version}.tgz`);
    assert.equal(pkg.exports["."].types, "./wsbroker.d.ts");
    assert.equal(pkg.exports["."].default, "./wsbroker.js");
    assert.equal(pkg.type, "module");

    const app = path.join(tmp, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, "package.json"),
        JSON.stringify({ name: "app", private: true, type: "module" }));
    npm(["install", "--offline", "--no-audit", "--no-fund", tarball], app, cache);
    const installed = path.join(app, "node_modules", "wsbroker-client");
    assert.deepEqual(fs.readdirSync(installed).sort(),
        ["README.md", "package.json", "wsbroker.d.ts", "wsbroker.js"]);

    // It runs: the bare specifier resolves to the ES module.
    const out = execFileSync(process.execPath, ["--input-type=module", "-e",
        'import connect, { VERSION, matches } from "wsbroker-client"; ' +
        'console.log(typeof connect, typeof VERSION, matches("a.*", "a.b"))'],
    { cwd: app, encoding: "utf8" });
    assert.equal(out, "function string true\n");

    const flags = ["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
        "--target", "es2022", "--lib", "es2022,dom"];
    fs.writeFileSync(path.join(app, "app.ts"), APP);
    const ok = spawnSync(process.execPath, [tsc, ...flags, "app.ts"], { cwd: app, encoding: "utf8" });
    assert.equal(ok.status, 0, `tsc failed:\n${ok.stdout}${ok.stderr}`);

    fs.writeFileSync(path.join(app, "bad.ts"), BAD);
    const bad = spawnSync(process.execPath, [tsc, ...flags, "bad.ts"], { cwd: app, encoding: "utf8" });
    assert.notEqual(bad.status, 0, "a misuse type-checked: the package's types are not applied");
    assert.match(bad.stdout, /TS2322: Type 'Promise<PublishAck>' is not assignable to type 'number'/);
});
