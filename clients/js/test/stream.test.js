// Streams (PROTOCOL.md 3.1b) through the client, against the real broker:
// a wildcard subscription inside a stream recovers by itself after the
// socket drops, with the stream's one position: every missed message of
// every matching topic, once, in stream order, then live.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "../wsbroker.js";
import { WebSocket, metrics, nextEvent, startBroker, waitFor } from "./helpers.js";

const FAST = { reconnect: { minDelay: 10, maxDelay: 50 } };
const RULES = JSON.stringify([{ pattern: "auction.>", stream: { size: 1000 }, publisher: true }]);

/** A WebSocket class whose instances the test can cut like a network would. */
function tracked(sockets) {
    return class TrackedWebSocket extends WebSocket {
        constructor(...args) {
            super(...args);
            sockets.push(this);
        }
    };
}

describe("streams", () => {
    for (const pattern of ["auction.*.bid", "auction.a1.bid"]) {
        test(`a dropped socket recovers ${pattern} from the stream's position, then live`, async () => {
            const broker = await startBroker({ args: ["--topics", RULES] });
            const sockets = [];
            const c = connect(broker.url, { ...FAST, WebSocket: tracked(sockets) });
            try {
                const got = [];
                const s = c.subscribe(pattern, (m) => got.push([m.topic, m.seq, m.data]));
                await s.ready;
                const topics = ["auction.a1.bid", "auction.a2.bid", "auction.a1.ask"];
                const want = [];
                let seq = 0;
                const pub = async (i) => {
                    const topic = topics[i % 3];
                    const r = await broker.publish({ topic, data: i });
                    assert.equal(r.status, 200, r.text);
                    seq++;
                    assert.equal(r.body.seq, seq); // one seq for the whole stream
                    const p = pattern.split(".");
                    const t = topic.split(".");
                    if (p.every((tok, k) => tok === "*" || tok === t[k])) want.push([topic, seq, i]);
                };
                for (let i = 0; i < 6; i++) await pub(i);
                await waitFor(() => got.length === want.length, 3000, "the first messages");
                const recovered = nextEvent(c, "recovered", 10000);
                // The "disconnect" event, not a poll of the state: a fast
                // reconnect may be open again before a poll would look.
                const gone = nextEvent(c, "disconnect", 3000);
                sockets.at(-1)._socket.destroy(); // no close frame: the client sees 1006
                await gone;
                for (let i = 6; i < 40; i++) await pub(i);
                const info = await recovered;
                assert.equal(info.topic, pattern);
                assert.equal(info.recovered, true);
                assert.equal(info.stream, "auction.>");
                for (let i = 40; i < 46; i++) await pub(i);
                await waitFor(() => got.length >= want.length, 5000, "every matching message");
                assert.deepEqual(got, want); // exactly once each, in stream order
                assert.equal(c.stats.recovered, 1);
            } finally {
                await c.close();
                await broker.stop();
                broker.cleanup();
            }
        });
    }

    test("subscribe(pattern, {since}) inside a stream replays from that position", async () => {
        const broker = await startBroker({ args: ["--topics", RULES] });
        const c = connect(broker.url, { ...FAST, WebSocket });
        try {
            let epoch;
            for (let i = 0; i < 4; i++) {
                const r = await broker.publish({ topic: `auction.a${i}.bid`, data: i });
                assert.equal(r.status, 200, r.text);
            }
            const first = c.subscribe("auction.>", () => {});
            await first.ready;
            const pos = await new Promise((resolve) => {
                const s = c.subscribe("auction.a9.bid", { since: { epoch: "x", seq: 0 } });
                s.on("recovered", resolve);
            });
            epoch = pos.epoch;
            assert.equal(pos.recovered, false);
            assert.equal(pos.stream, "auction.>");
            const got = [];
            const s = c.subscribe("auction.*.bid", (m) => got.push(m.seq), { since: { epoch, seq: 2 } });
            const ready = await s.ready;
            assert.equal(ready.recovered, true);
            await waitFor(() => got.length === 2, 3000, "the replay");
            assert.deepEqual(got, [3, 4]);
        } finally {
            await c.close();
            await broker.stop();
            broker.cleanup();
        }
    });

    test("a reconnect past the log's end: gap and loss name the lost range, the rest is replayed once", async () => {
        const small = JSON.stringify([{ pattern: "auction.>", stream: { size: 3 } }]);
        const broker = await startBroker({ args: ["--topics", small] });
        const sockets = [];
        // While `offline`, reconnects go to a closed port: the client stays
        // away, whatever the machine's speed, until the test lets it back.
        let offline = false;
        const Tracked = tracked(sockets);
        class Gated extends Tracked {
            constructor(url, ...rest) {
                super(offline ? "ws://127.0.0.1:1/ws" : url, ...rest);
            }
        }
        const c = connect(broker.url, { ...FAST, WebSocket: Gated });
        try {
            const got = [];
            const s = c.subscribe("auction.*.bid", (m) => got.push(m.seq));
            await s.ready;
            const pub = async (topic, data) => {
                const r = await broker.publish({ topic, data });
                assert.equal(r.status, 200, r.text);
                return r.body.seq;
            };
            await pub("auction.a1.bid", 0);
            await waitFor(() => got.length === 1, 3000, "the first message");
            const losses = [];
            s.on("loss", (info) => losses.push(info));
            const gap = nextEvent(c, "gap", 10000);
            const loss = nextEvent(c, "loss", 10000);
            offline = true;
            const gone = nextEvent(c, "disconnect", 3000);
            sockets.at(-1)._socket.destroy();
            await gone;
            // Seqs 2..6; the log keeps 4..6 (5 is an ask): 2 and 3 are lost.
            const topics = ["auction.a1.bid", "auction.a2.bid", "auction.a1.bid", "auction.a1.ask", "auction.a2.bid"];
            for (const [i, t] of topics.entries()) await pub(t, i + 1);
            offline = false;
            const g = await gap;
            const l = await loss;
            const epoch = g.epoch;
            assert.deepEqual(g, { topic: "auction.*.bid", epoch, seq: 1, stream: "auction.>", to: 3 });
            assert.deepEqual(l, g);
            assert.deepEqual(losses, [g]);
            await waitFor(() => got.length === 3, 5000, "the rest of the log");
            const live = await pub("auction.a2.bid", "live");
            await waitFor(() => got.length === 4, 5000, "live");
            assert.deepEqual(got, [1, 4, 6, live]); // no duplicate, nothing from the lost range
            assert.equal(c.stats.losses, 1);
            assert.equal(c.stats.recovered, 0);
        } finally {
            await c.close();
            await broker.stop();
            broker.cleanup();
        }
    });

    test('a slow reader on a "drop" stream gets a gap, resumes with since, and sees every bid once', async () => {
        const drop = JSON.stringify([{ pattern: "auction.>", stream: { slow_consumer: "drop" } }]);
        // No permessage-deflate: the filler compresses ~1000x, and the queue
        // must fill with bytes, not take long enough for the log to trim.
        const broker = await startBroker({
            args: ["--topics", drop, "--max-outbound-bytes", "64KiB", "--compression-enabled", "false"],
        });
        const sockets = [];
        const c = connect(broker.url, { ...FAST, WebSocket: tracked(sockets) });
        try {
            const got = [];
            const s = c.subscribe("auction.*.bid", (m) => got.push(m.seq));
            await s.ready;
            const gaps = [];
            s.on("gap", (info) => gaps.push(info));
            // The client stops reading; big bids (and asks) pour in until the
            // broker gives up queueing for it: the condition drives the loop.
            sockets.at(-1)._socket.pause();
            const big = "x".repeat(16000);
            const bids = [];
            const deadline = Date.now() + 60000;
            for (let i = 0; ; i += 10) {
                if ((await metrics(broker))["wsbroker_history_gaps_total"] >= 1) break;
                assert.ok(Date.now() < deadline, "no gap notice");
                const batch = [];
                for (let k = i; k < i + 10; k++) {
                    const topic = k % 3 === 1 ? "auction.a1.ask" : `auction.a${k % 3}.bid`;
                    batch.push(broker.publish({ topic, data: { k, big } }).then((r) => [topic, r]));
                }
                for (const [topic, r] of await Promise.all(batch)) {
                    assert.equal(r.status, 200, r.text);
                    if (topic.endsWith(".bid")) bids.push(r.body.seq);
                }
            }
            sockets.at(-1)._socket.resume();
            await waitFor(() => gaps.length === 1, 10000, "the gap");
            assert.equal(gaps[0].stream, "auction.>");
            assert.equal(gaps[0].topic, "auction.*.bid");
            assert.equal(gaps[0].to, undefined);
            bids.sort((a, b) => a - b);
            // The client resubscribed with since by itself: the rest is replayed.
            await waitFor(() => got.length >= bids.length, 20000, "every bid");
            const r = await broker.publish({ topic: "auction.a2.bid", data: "live" });
            bids.push(r.body.seq);
            await waitFor(() => got.length >= bids.length, 5000, "live");
            assert.deepEqual(got, bids); // exactly once each, in stream order
            assert.equal(c.stats.gaps, 1);
            assert.equal(c.stats.losses, 0);
            assert.equal(c.stats.reconnects, 0); // the connection stayed open
        } finally {
            await c.close();
            await broker.stop();
            broker.cleanup();
        }
    });
});
