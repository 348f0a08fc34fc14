// Streams (PROTOCOL.md 3.1b) through the client, against the real broker:
// a wildcard subscription inside a stream recovers by itself after the
// socket drops, with the stream's one position: every missed message of
// every matching topic, once, in stream order, then live.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { State, connect } from "../wsbroker.js";
import { WebSocket, nextEvent, startBroker, waitFor } from "./helpers.js";

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
                sockets.at(-1)._socket.destroy(); // no close frame: the client sees 1006
                await waitFor(() => c.state !== State.OPEN, 3000, "socket gone");
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
});
