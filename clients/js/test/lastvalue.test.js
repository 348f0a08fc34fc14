// Last value on wildcards (PROTOCOL.md 3.1a) through the client, against the
// real broker: subscribe(pattern, {history: N}) gets the last N messages of
// every matching topic with history (each with topic, seq and epoch), then
// live ones, once each.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { WebSocket, waitFor, withBroker } from "./helpers.js";

const RULES = ["--history", JSON.stringify([{ pattern: "prices.>", size: 10 }])];

describe("history on a pattern", () => {
    test("subscribe(pattern, {history: N}) gets the last N of each matching topic, then live", async () => {
        await withBroker(RULES, async (broker, open) => {
            for (let i = 0; i < 3; i++) await broker.publish({ topic: "prices.btc.usd", data: i });
            await broker.publish({ topic: "prices.eth.usd", data: 10 });
            await broker.publish({ topic: "prices.btc.eur", data: 20 }); // not matched
            const c = open(broker.url, { WebSocket });
            const got = [];
            const s = c.subscribe("prices.*.usd", (m) => got.push(m), { history: 2 });
            const info = await s.ready;
            assert.equal(info.recovered, undefined);
            await waitFor(() => got.length === 3, 3000, "the replay");
            const seqs = (topic) => got.filter((m) => m.topic === topic).map((m) => m.seq);
            assert.deepEqual(seqs("prices.btc.usd"), [2, 3]);
            assert.deepEqual(seqs("prices.eth.usd"), [1]);
            assert.ok(got.every((m) => typeof m.epoch === "string" && m.epoch.length === 12));
            assert.deepEqual(
                got.filter((m) => m.topic === "prices.btc.usd").map((m) => m.data),
                [1, 2],
            );
            await broker.publish({ topic: "prices.eth.usd", data: 11 });
            await waitFor(() => got.length === 4, 3000, "the live message");
            assert.equal(got[3].topic, "prices.eth.usd");
            assert.equal(got[3].seq, 2);
            // A second subscription of the held pattern: live only, and the
            // first one gets nothing twice.
            const later = [];
            const s2 = c.subscribe("prices.*.usd", (m) => later.push(m.seq), { history: 2 });
            await s2.ready;
            await broker.publish({ topic: "prices.btc.usd", data: 3 });
            await waitFor(() => got.length === 5 && later.length === 1, 3000, "live on both");
            assert.deepEqual(later, [4]);
            assert.equal(got[4].seq, 4);
        });
    });

    test("over max_history_topics_per_subscribe the subscription ends with limit_exceeded", async () => {
        await withBroker([...RULES, "--max-history-topics-per-subscribe", "1"], async (broker, open) => {
            await broker.publish({ topic: "prices.a.usd", data: 1 });
            await broker.publish({ topic: "prices.b.usd", data: 2 });
            const c = open(broker.url, { WebSocket });
            c.on("error", () => {});
            const s = c.subscribe("prices.>", () => {}, { history: 1 });
            await assert.rejects(s.ready, (err) => err.code === "limit_exceeded");
        });
    });
});

describe("last value on a pattern across a reconnect", () => {
    test("the replay is asked again: topics that changed while offline arrive, the others are not repeated", async () => {
        await withBroker(RULES, async (broker, open) => {
            await broker.publish({ topic: "prices.btc.usd", data: 1 });
            await broker.publish({ topic: "prices.eth.usd", data: 10 });
            const sockets = [];
            const Tracked = class extends WebSocket {
                constructor(...args) {
                    super(...args);
                    sockets.push(this);
                }
            };
            const c = open(broker.url, { WebSocket: Tracked, reconnect: { minDelay: 20, maxDelay: 200 } });
            const got = [];
            const s = c.subscribe("prices.*.usd", (m) => got.push([m.topic, m.data]), { history: 1 });
            await s.ready;
            await waitFor(() => got.length === 2, 3000, "the replay");
            const gone = new Promise((resolve) => c.once("disconnect", resolve));
            sockets.at(-1)._socket.destroy(); // no close frame: the client sees 1006
            await gone;
            // While offline: one topic changes, a new one appears.
            await broker.publish({ topic: "prices.btc.usd", data: 2 });
            await broker.publish({ topic: "prices.sol.usd", data: 100 });
            const again = new Promise((resolve) => s.once("subscribed", resolve));
            await again;
            await waitFor(() => got.length >= 4, 3000, "what changed while offline");
            // A live message after the replay proves nothing else was coming.
            await broker.publish({ topic: "prices.eth.usd", data: 11 });
            await waitFor(() => got.some(([, d]) => d === 11), 3000, "the live message");
            got.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
            assert.deepEqual(got, [
                ["prices.btc.usd", 1],
                ["prices.btc.usd", 2],
                ["prices.eth.usd", 10],
                ["prices.eth.usd", 11],
                ["prices.sol.usd", 100],
            ]);
        });
    });
});
