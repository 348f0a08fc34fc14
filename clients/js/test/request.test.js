// request() against the real broker (PROTOCOL.md 3.7): the first reply
// resolves it with {data, from}; no subscriber rejects with no_responders at
// once; a silent subscriber with timeout; responders see reply_to.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { connect, State } from "../wsbroker.js";
import { WebSocket, nextEvent, startBroker } from "./helpers.js";

const FAST = { WebSocket, reconnect: { minDelay: 20, maxDelay: 200 } };

describe("request/reply against the real broker", () => {
    let broker;
    const clients = [];
    const open = async () => {
        const c = connect(broker.url, FAST);
        clients.push(c);
        if (c.state !== State.OPEN) await nextEvent(c, "open");
        return c;
    };

    before(async () => {
        broker = await startBroker({ args: ["--workers", "2"] });
    });
    after(async () => {
        await Promise.all(clients.map((c) => c.close()));
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    });

    test("the first reply resolves the request with its data and the responder", async () => {
        const device = await open();
        const seen = [];
        await device.subscribe("dev.d7.cmd", (msg) => {
            seen.push(msg);
            device.publish(msg.reply_to, { ok: true, did: msg.data.op });
        }).ready;
        const operator = await open();
        const reply = await operator.request("dev.d7.cmd", { op: "reboot" }, { timeout: 5000 });
        assert.deepEqual(reply, { data: { ok: true, did: "reboot" }, from: { client: device.welcome.client_id, user: null } });
        assert.equal(seen.length, 1);
        assert.match(seen[0].reply_to, /^_inbox\.[0-9a-f]{16}\.[0-9a-f]{32}$/);
    });

    test("no subscriber: no_responders at once; a silent one: timeout", async () => {
        const c = await open();
        await assert.rejects(c.request("dev.nobody", 1, { timeout: 60000 }), { code: "no_responders", topic: "dev.nobody" });
        const mute = await open();
        await mute.subscribe("dev.mute", () => {}).ready;
        await assert.rejects(c.request("dev.mute", 1, { timeout: 50 }), { code: "timeout", topic: "dev.mute" });
        await assert.rejects(c.request("dev.mute", 1, { timeout: 0 }), TypeError);
        await assert.rejects(c.request("_inbox.x", 1), { code: "forbidden" });
    });
});
