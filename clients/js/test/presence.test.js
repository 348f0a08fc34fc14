// presence(), presenceStats(), join/leave events and `from` against the real
// broker, with topic rules enabling them on chat.> (PROTOCOL.md 3.6, 4.8).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";

import { connect, State } from "../wsbroker.js";
import { WebSocket, nextEvent, startBroker, waitFor } from "./helpers.js";

const FAST = { WebSocket, reconnect: { minDelay: 20, maxDelay: 200 } };
const SECRET = "presence-test-secret-0123456789abcdef";
const TOPICS = [
    { pattern: "chat.>", presence: true, join_leave: true, publisher: true },
    { pattern: "quiet.>", history: { size: 10 } },
];

function b64url(obj) {
    return Buffer.from(JSON.stringify(obj)).toString("base64url");
}

/** An HS256 JWT for `sub`, allowed to subscribe to and publish on everything unless `claims` say otherwise. */
function token(sub, claims = {}) {
    const head = b64url({ alg: "HS256", typ: "JWT" });
    const body = b64url({ sub, exp: Math.floor(Date.now() / 1000) + 3600, subscribe: [">"], publish: [">"], ...claims });
    const sig = crypto.createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
    return `${head}.${body}.${sig}`;
}

describe("presence against the real broker", () => {
    let broker;
    const clients = [];
    const open = async (user, claims) => {
        const c = connect(broker.url, { ...FAST, token: user ? token(user, claims) : undefined });
        clients.push(c);
        if (c.state !== State.OPEN) await nextEvent(c, "open");
        return c;
    };

    before(async () => {
        broker = await startBroker({ args: ["--topics", JSON.stringify(TOPICS), "--auth-jwt-secret", SECRET] });
    });
    after(async () => {
        await Promise.all(clients.map((c) => c.close()));
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    });

    test("presence() lists the members of a topic; presenceStats() counts clients and users", async () => {
        const alice1 = await open("alice");
        const alice2 = await open("alice");
        const bob = await open("bob");
        for (const c of [alice1, alice2, bob]) await c.subscribe("chat.p1", () => {}).ready;
        await bob.subscribe("chat.*", () => {}).ready; // a pattern makes no member
        const { topic, members } = await bob.presence("chat.p1");
        assert.equal(topic, "chat.p1");
        const byClient = (a, b) => (a.client < b.client ? -1 : 1);
        assert.deepEqual(
            members.sort(byClient),
            [
                { client: alice1.welcome.client_id, user: "alice" },
                { client: alice2.welcome.client_id, user: "alice" },
                { client: bob.welcome.client_id, user: "bob" },
            ].sort(byClient),
        );
        assert.deepEqual(await alice1.presenceStats("chat.p1"), { topic: "chat.p1", clients: 3, users: 2 });
        assert.deepEqual(await alice1.presence("chat.empty"), { topic: "chat.empty", members: [] });
    });

    test("presence errors reject with the broker's code", async () => {
        const c = await open("carol", { subscribe: ["chat.open"] });
        await assert.rejects(c.presence("quiet.x"), { code: "not_available", topic: "quiet.x" });
        await assert.rejects(c.presence("chat.closed"), { code: "forbidden", topic: "chat.closed" });
        await assert.rejects(c.presenceStats("chat.*"), { code: "bad_topic" });
        assert.deepEqual(await c.presenceStats("chat.open"), { topic: "chat.open", clients: 0, users: 0 });
    });

    test("join and leave reach the other subscribers, on the connection and the subscription", async () => {
        const watcher = await open("wendy");
        const joins = [];
        const leaves = [];
        const sub = watcher.subscribe("chat.p2", () => {});
        sub.on("join", (i) => joins.push(i));
        sub.on("leave", (i) => leaves.push(i));
        const connJoins = [];
        watcher.on("join", (i) => i.topic === "chat.p2" && connJoins.push(i));
        await sub.ready;

        const dave = await open("dave");
        const daveSub = dave.subscribe("chat.p2", () => {});
        await daveSub.ready;
        const member = { client: dave.welcome.client_id, user: "dave" };
        await waitFor(() => joins.length === 1, 5000, "join");
        assert.deepEqual(joins, [{ topic: "chat.p2", member }]);
        assert.deepEqual(connJoins, joins);

        await daveSub.unsubscribe();
        await waitFor(() => leaves.length === 1, 5000, "leave after unsubscribe");
        await dave.subscribe("chat.p2", () => {}).ready;
        await waitFor(() => joins.length === 2, 5000, "second join");
        await dave.close();
        await waitFor(() => leaves.length === 2, 5000, "leave after close");
        assert.deepEqual(leaves, [{ topic: "chat.p2", member }, { topic: "chat.p2", member }]);
    });

    test("messages carry the broker's from; a from inside data is untouched", async () => {
        const reader = await open("rita");
        const writer = await open("walt");
        const got = [];
        await reader.subscribe("chat.p3", (m) => got.push(m)).ready;
        await writer.publish("chat.p3", { from: "someone else", text: "hi" });
        await waitFor(() => got.length === 1, 5000, "message");
        assert.deepEqual(got[0].from, { client: writer.welcome.client_id, user: "walt" });
        assert.deepEqual(got[0].data, { from: "someone else", text: "hi" });
    });
});
