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
