// The JS client against the real broker: subscribe/publish/ack/error, wildcards,
// unsubscribe, async iteration, reconnect after the broker is killed and
// restarted on the same port, resubscribe, the offline publish queue bound.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { connect, State, WsbrokerError } from "../wsbroker.js";
import { Broker, WebSocket, allThreadsStopped, nextEvent, startBroker, waitFor, within } from "./helpers.js";

const FAST = { WebSocket, reconnect: { minDelay: 20, maxDelay: 200 } };

function collect() {
    const got = [];
    const fn = (msg) => got.push(msg);
    fn.got = got;
    return fn;
}

describe("against one broker", () => {
    let broker;
    const clients = [];
    const open = async (opts = {}) => {
        const c = connect(broker.url, { ...FAST, ...opts });
        clients.push(c);
        if (c.state !== State.OPEN) await nextEvent(c, "open");
        return c;
    };

    before(async () => {
        broker = await startBroker();
    });
    after(async () => {
        await Promise.all(clients.map((c) => c.close()));
        const { code } = await broker.stop();
        broker.cleanup();
        assert.equal(code, 0, `broker exit status; stderr: ${broker.stderr}`);
    });

    test("connects, reports its state and the broker's welcome", async () => {
        const c = connect(broker.url, FAST);
        clients.push(c);
        assert.equal(c.state, "connecting");
        const states = [];
        c.on("state", (s) => states.push(s));
        const welcome = await nextEvent(c, "open");
        assert.equal(c.state, "open");
        assert.deepEqual(states, ["open"]);
        assert.equal(welcome.protocol, 1);
        assert.equal(typeof welcome.client_id, "string");
        assert.equal(welcome.limits.max_message_size, 65536);
        assert.equal(c.welcome, welcome);
        await c.close();
        assert.equal(c.state, "closed");
        assert.deepEqual(states, ["open", "closed"]);
    });

    test("publish resolves with the ack's seq; the subscriber gets the message", async () => {
        const c = await open();
        const cb = collect();
        const s = c.subscribe("t1.prices.btc", cb);
        assert.deepEqual(await s.ready, { recovered: undefined, resubscribed: false });
        assert.equal(s.active, true);
        const a1 = await c.publish("t1.prices.btc", { bid: 64000.5 });
        const a2 = await c.publish("t1.prices.btc", null);
        assert.equal(a1.topic, "t1.prices.btc");
        assert.equal(typeof a1.seq, "number");
        assert.equal(a2.seq, a1.seq + 1);
        await waitFor(() => cb.got.length === 2, 3000, "two messages");
        assert.deepEqual(
            cb.got.map((m) => [m.type, m.topic, m.seq, m.data]),
            [
                ["message", "t1.prices.btc", a1.seq, { bid: 64000.5 }],
                ["message", "t1.prices.btc", a2.seq, null],
            ],
        );
    });

    test("publish(topic) without data sends null", async () => {
        const c = await open();
        const cb = collect();
        await c.subscribe("t1b.x", cb).ready;
        await c.publish("t1b.x");
        await waitFor(() => cb.got.length === 1, 3000, "message");
        assert.equal(cb.got[0].data, null);
    });

    test("broker errors reject with a typed error (code + message)", async () => {
        const c = await open();
        await assert.rejects(c.publish("t2.*", 1), (err) => {
            assert.ok(err instanceof WsbrokerError);
            assert.equal(err.code, "bad_topic");
            assert.match(err.message, /wildcard/);
            assert.equal(err.topic, "t2.*");
            return true;
        });
        await assert.rejects(c.publish("$sys.x", 1), { name: "WsbrokerError", code: "forbidden" });
        await assert.rejects(c.publish("a..b", 1), { code: "bad_topic" });
        // The connection is still usable after errors.
        assert.equal(typeof (await c.publish("t2.ok", 1)).seq, "number");
        assert.equal(c.state, "open");
    });

    test("a refused subscription rejects ready, ends its iterator and emits error", async () => {
        const c = await open();
        const errors = [];
        c.on("error", (e) => errors.push(e));
        const s = c.subscribe("t3.>.x");
        await assert.rejects(s.ready, { code: "bad_topic" });
        assert.equal(s.closed, true);
        await assert.rejects(s[Symbol.asyncIterator]().next(), { code: "bad_topic" });
        assert.equal(errors.length, 1);
        assert.equal(errors[0].code, "bad_topic");
        await s.unsubscribe(); // nothing to remove: resolves
    });

    test("unsubscribing while the subscribe is in flight leaves nothing behind", async () => {
        const c = await open();
        const bad = c.subscribe("t3b.*x");
        const badDone = bad.unsubscribe(); // the broker answers bad_topic to both
        await badDone;
        const got = collect();
        const s = c.subscribe("t3b.x", got);
        const done = s.unsubscribe();
        await done;
        await c.publish("t3b.x", 1);
        await c.ping();
        assert.equal(got.got.length, 0);
        assert.equal(c.stats.messages, 0);
    });

    test("wildcards: * matches one token, > one or more; each message once per subscription", async () => {
        const c = await open();
        const star = collect();
        const gt = collect();
        const exact = collect();
        const end = collect();
        await Promise.all([
            c.subscribe("t4.prices.*.usd", star).ready,
            c.subscribe("t4.prices.>", gt).ready,
            c.subscribe("t4.prices.btc.usd", exact).ready,
            c.subscribe("t4.end", end).ready,
        ]);
        const pub = await open();
        for (const t of ["t4.prices.btc.usd", "t4.prices.eth.usd", "t4.prices.btc.eur", "t4.prices.btc.usd.x", "t4.prices"]) {
            await pub.publish(t, t);
        }
        // A barrier, not a pause: t4.end is published last, so everything
        // before it has arrived when it does.
        await pub.publish("t4.end", 0);
        await waitFor(() => end.got.length === 1, 3000, "the t4.end barrier");
        assert.deepEqual(star.got.map((m) => m.topic), ["t4.prices.btc.usd", "t4.prices.eth.usd"]);
        assert.deepEqual(gt.got.map((m) => m.topic), [
            "t4.prices.btc.usd",
            "t4.prices.eth.usd",
            "t4.prices.btc.eur",
            "t4.prices.btc.usd.x",
        ]);
        assert.deepEqual(exact.got.map((m) => m.topic), ["t4.prices.btc.usd"]);
        // The broker sent each message once; the client fanned it out locally
        // (four plus the t4.end barrier).
        assert.equal(c.stats.messages, 5);
    });

    test("messages published over HTTP reach the client", async () => {
        const c = await open();
        const cb = collect();
        await c.subscribe("t5.>", cb).ready;
        const res = await broker.publish({ topic: "t5.http", data: { text: "hi" } });
        assert.equal(res.status, 200);
        await waitFor(() => cb.got.length === 1, 3000, "HTTP-published message");
        assert.deepEqual(cb.got[0].data, { text: "hi" });
        assert.equal(cb.got[0].seq, res.body.seq);
    });

    test("unsubscribe stops delivery; a pattern shared by two subscriptions stays until both leave", async () => {
        const c = await open();
        const a = collect();
        const b = collect();
        const sa = c.subscribe("t6.x", a);
        const sb = c.subscribe("t6.x", b);
        await Promise.all([sa.ready, sb.ready]);
        await c.publish("t6.x", 1);
        await waitFor(() => a.got.length === 1 && b.got.length === 1, 3000, "both");
        await sa.unsubscribe();
        assert.equal(sa.closed, true);
        await c.publish("t6.x", 2);
        await waitFor(() => b.got.length === 2, 3000, "second message on b");
        await sb.unsubscribe();
        const { seq } = await c.publish("t6.x", 3);
        // A ping round trip orders after any message the broker would still send.
        await c.ping();
        assert.deepEqual(a.got.map((m) => m.data), [1]);
        assert.deepEqual(b.got.map((m) => m.data), [1, 2]);
        assert.equal(typeof seq, "number");
        // Unsubscribing twice is harmless.
        await sb.unsubscribe();
    });

    test("async iteration; break unsubscribes", async () => {
        const c = await open();
        const s = c.subscribe("t7.>");
        await s.ready;
        for (let i = 0; i < 3; i++) await c.publish(`t7.n${i}`, i);
        const seen = [];
        await within(
            (async () => {
                for await (const m of s) {
                    seen.push(m.data);
                    if (seen.length === 3) break;
                }
            })(),
            3000,
            "three iterated messages",
        );
        assert.deepEqual(seen, [0, 1, 2]);
        assert.equal(s.closed, true);
        await c.ping();
        // The broker no longer has the subscription: a new publish is not received.
        await c.publish("t7.n3", 3);
        await c.ping();
        assert.equal(c.stats.messages, 3);
    });

    test("the iteration buffer is bounded (oldest dropped and counted)", async () => {
        const c = await open();
        const s = c.subscribe("t8.x", { bufferSize: 2 });
        await s.ready;
        for (let i = 0; i < 5; i++) await c.publish("t8.x", i);
        await waitFor(() => s.received === 5, 3000, "five messages");
        assert.equal(s.dropped, 3);
        const it = s[Symbol.asyncIterator]();
        assert.equal((await it.next()).value.data, 3);
        assert.equal((await it.next()).value.data, 4);
        await s.unsubscribe();
        assert.deepEqual(await it.next(), { value: undefined, done: true });
    });

    test("subscribe with since on an exact topic: the ack's recovered:false is reported", async () => {
        const c = await open();
        const s = c.subscribe("t9.orders.42", () => {}, { since: { epoch: "k3f9", seq: 41 } });
        assert.deepEqual(await s.ready, { recovered: false, resubscribed: false });
    });

    test("a publish larger than the announced max_message_size is refused before sending", async () => {
        const c = await open();
        await assert.rejects(c.publish("t10.big", "x".repeat(70000)), { code: "too_large" });
        await assert.rejects(c.publish("t10.big", "é".repeat(33000)), { code: "too_large" });
        // Still open: the broker never saw the oversized message (it would close 1009).
        assert.equal(typeof (await c.publish("t10.big", "é".repeat(1000))).seq, "number");
        assert.equal(c.state, "open");
    });

    test("ping resolves with a round-trip time", async () => {
        const c = await open();
        const rtt = await c.ping();
        assert.ok(rtt >= 0 && rtt < 2000, `rtt ${rtt}`);
    });

    test("close() rejects queued and unanswered requests and ends subscriptions", async () => {
        const c = connect(broker.url, FAST);
        const s = c.subscribe("t11.x");
        const p = c.publish("t11.x", 1); // queued: not open yet
        await c.close();
        await assert.rejects(p, { code: "closed" });
        assert.equal(s.closed, true);
        assert.deepEqual(await s[Symbol.asyncIterator]().next(), { value: undefined, done: true });
        await assert.rejects(c.publish("t11.x", 2), { code: "closed" });
        await c.close(); // idempotent
    });
});

describe("reconnect", () => {
    test("after the broker is killed and restarted on the same port: reconnects, resubscribes, flushes the queue", { timeout: 30000 }, async () => {
        const broker = await startBroker();
        const port = broker.port;
        const c = connect(broker.url, { ...FAST, maxQueue: 3 });
        const states = [];
        c.on("state", (s) => states.push(s));
        const disconnects = [];
        c.on("disconnect", (d) => disconnects.push(d));
        const exact = collect();
        const wild = collect();
        const sExact = c.subscribe("r1.room", exact);
        const sWild = c.subscribe("r1.*", wild);
        await Promise.all([sExact.ready, sWild.ready]);
        await c.publish("r1.room", "before");
        await waitFor(() => exact.got.length === 1 && wild.got.length === 1, 3000, "first message");

        await broker.kill(); // SIGKILL: no close frame, the client sees 1006
        await waitFor(() => c.state === "connecting", 3000, "state connecting");
        assert.equal(sExact.active, false);

        // Offline: three publishes are queued, the fourth is refused at once.
        const queued = [c.publish("r1.room", "q1"), c.publish("r1.room", "q2"), c.publish("r1.other", "q3")];
        assert.equal(c.queued, 3);
        await assert.rejects(c.publish("r1.room", "q4"), (err) => err.code === "queue_full" && /maxQueue 3/.test(err.message));

        const subscribedAgain = nextEvent(sExact, "subscribed", 10000);
        const restarted = new Broker({ port });
        await restarted.start();
        try {
            await within(waitFor(() => c.state === "open", 10000, "reopen"), 11000, "reopen");
            assert.deepEqual(await subscribedAgain, { recovered: undefined, resubscribed: true });
            const acks = await within(Promise.all(queued), 5000, "queued publish acks");
            // A new broker numbers from 1 again; the order of the queue is kept.
            assert.deepEqual(acks.map((a) => a.topic), ["r1.room", "r1.room", "r1.other"]);
            assert.ok(acks[0].seq < acks[1].seq);
            // The resubscribed patterns receive the flushed queue (subscribes go first).
            await waitFor(() => exact.got.length === 3 && wild.got.length === 4, 3000, "flushed messages");
            assert.deepEqual(exact.got.map((m) => m.data), ["before", "q1", "q2"]);
            assert.deepEqual(wild.got.map((m) => m.data), ["before", "q1", "q2", "q3"]);
            // And live traffic from another publisher (HTTP) too.
            await restarted.publish({ topic: "r1.room", data: "after" });
            await waitFor(() => exact.got.length === 4, 3000, "live message after reconnect");
            assert.ok(disconnects.length >= 1);
            assert.equal(disconnects[0].code, 1006);
            assert.deepEqual(states.slice(0, 2), ["open", "connecting"]);
            assert.equal(states.at(-1), "open");
            assert.ok(!states.includes("closed"));
            assert.equal(c.stats.reconnects, 1);
        } finally {
            await c.close();
            await restarted.stop();
            restarted.cleanup();
            broker.cleanup();
        }
    });

    test("a publish in flight when the socket drops is rejected with 'disconnected', not resent", { timeout: 20000 }, async () => {
        const broker = await startBroker();
        const c = connect(broker.url, FAST);
        try {
            await nextEvent(c, "open");
            // SIGSTOP freezes the broker: the publish is written but never
            // acknowledged, once every thread has stopped (a worker thread
            // still running for a moment answered it once on a loaded machine).
            process.kill(broker.pid, "SIGSTOP");
            await waitFor(() => allThreadsStopped(broker.pid), 5000, "the broker stopped");
            // On an open connection publish() sends at once (no pause needed for
            // it to be in flight): the request is pending when the socket drops.
            const p = c.publish("r2.x", 1);
            process.kill(broker.pid, "SIGKILL");
            await assert.rejects(within(p, 5000, "rejection"), { code: "disconnected" });
        } finally {
            // Also on failure: a client left reconnecting keeps node (and the suite) running.
            await c.close();
            await broker.kill();
            broker.cleanup();
        }
    });

    test("SIGTERM (close 1001, going away) also leads to a reconnect", { timeout: 20000 }, async () => {
        const broker = await startBroker();
        const port = broker.port;
        const c = connect(broker.url, FAST);
        await nextEvent(c, "open");
        const gone = nextEvent(c, "disconnect", 8000);
        const { code } = await broker.stop();
        assert.equal(code, 0);
        assert.equal((await gone).code, 1001);
        const b2 = new Broker({ port });
        await b2.start();
        try {
            await waitFor(() => c.state === "open", 10000, "reopen");
        } finally {
            await c.close();
            await b2.stop();
            b2.cleanup();
            broker.cleanup();
        }
    });

    test("with reconnect:false a lost connection is final", { timeout: 20000 }, async () => {
        const broker = await startBroker();
        const c = connect(broker.url, { WebSocket, reconnect: false });
        await nextEvent(c, "open");
        const s = c.subscribe("r3.x");
        await s.ready;
        const closed = nextEvent(c, "close", 5000);
        await broker.kill();
        const info = await closed;
        assert.equal(info.code, 1006);
        assert.equal(c.state, "closed");
        assert.equal(s.closed, true);
        broker.cleanup();
    });

    test("the first connection attempt retries with backoff until the broker is up", { timeout: 20000 }, async () => {
        // Find a free port, then release it so that nothing listens there at first.
        const probe = await startBroker();
        const port = probe.port;
        await probe.stop();
        probe.cleanup();
        const c = connect(`ws://127.0.0.1:${port}/ws`, { WebSocket, reconnect: { minDelay: 20, maxDelay: 100 } });
        const delays = [];
        c.on("disconnect", (d) => delays.push(d.reconnectIn));
        await waitFor(() => delays.length >= 4, 5000, "four failed attempts");
        assert.equal(c.state, "connecting");
        // Exponential with jitter, capped at maxDelay: 20·2^n·[0.5, 1].
        assert.ok(delays[0] >= 10 && delays[0] <= 20, `first delay ${delays[0]}`);
        assert.ok(delays[3] >= 50 && delays[3] <= 100, `fourth delay ${delays[3]}`);
        const broker = new Broker({ port });
        await broker.start();
        try {
            await waitFor(() => c.state === "open", 5000, "open");
        } finally {
            await c.close();
            await broker.stop();
            broker.cleanup();
        }
    });
});

describe("history and recovery against the real broker", () => {
    test("a dropped socket recovers exactly what was missed, then live; 'recovered' is reported", async () => {
        const rules = JSON.stringify([{ pattern: "h.>", size: 1000 }]);
        const broker = await startBroker({ args: ["--history", rules] });
        // Remember the sockets the client opens so the test can cut one like a network would.
        const sockets = [];
        class TrackedWebSocket extends WebSocket {
            constructor(...args) {
                super(...args);
                sockets.push(this);
            }
        }
        const c = connect(broker.url, { ...FAST, WebSocket: TrackedWebSocket });
        try {
            const got = [];
            const s = c.subscribe("h.room", (m) => got.push(m.seq));
            await s.ready;
            for (let i = 0; i < 5; i++) await broker.publish({ topic: "h.room", data: i });
            await waitFor(() => got.length === 5, 3000, "first five");
            const recovered = nextEvent(c, "recovered", 10000);
            sockets.at(-1)._socket.destroy(); // no close frame: the client sees 1006
            await waitFor(() => c.state !== State.OPEN, 3000, "socket gone");
            for (let i = 5; i < 55; i++) await broker.publish({ topic: "h.room", data: i });
            const info = await recovered;
            assert.equal(info.topic, "h.room");
            assert.equal(info.recovered, true);
            for (let i = 55; i < 60; i++) await broker.publish({ topic: "h.room", data: i });
            await waitFor(() => got.length >= 60, 5000, "sixty messages");
            assert.deepEqual(got, Array.from({ length: 60 }, (_, i) => i + 1));
            assert.equal(c.stats.recovered, 1);
        } finally {
            await c.close();
            await broker.stop();
            broker.cleanup();
        }
    });
});
