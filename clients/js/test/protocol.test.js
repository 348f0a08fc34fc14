// Client behaviour the stock broker cannot show yet (history epochs) or that
// needs a misbehaving peer (a silent socket, a wrong protocol version), driven
// by a scripted WebSocket server from the `ws` package, plus the pure helpers.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { connect, isExactTopic, matches } from "../wsbroker.js";
import { WebSocket, nextEvent, requireDevDependency, waitFor } from "./helpers.js";

const { WebSocketServer } = requireDevDependency("ws");

const WELCOME = {
    type: "welcome",
    protocol: 1,
    client_id: "fake-1",
    node_id: "fake",
    version: "test",
    limits: { max_message_size: 65536, max_subscriptions: 1000, ping_interval_ms: 0 },
};

/**
 * A scripted broker. Each connection gets a welcome (unless `welcome` is
 * null) and its requests are recorded and answered by `handle(req, send, sock)`
 * (default: ack everything, pong pings).
 */
class FakeBroker {
    constructor({ welcome = WELCOME, handle } = {}) {
        this.welcome = welcome;
        this.handle = handle || defaultHandle;
        this.requests = []; // [connectionIndex, request]
        this.sockets = [];
        this.urls = [];
    }

    async start() {
        this.wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
        await new Promise((resolve) => this.wss.once("listening", resolve));
        this.url = `ws://127.0.0.1:${this.wss.address().port}/ws`;
        this.wss.on("connection", (sock, req) => {
            const index = this.sockets.length;
            this.sockets.push(sock);
            this.urls.push(req.url);
            const send = (obj) => sock.send(typeof obj === "string" ? obj : JSON.stringify(obj));
            if (this.welcome) send(this.welcome);
            sock.on("message", (data) => {
                const reqObj = JSON.parse(String(data));
                this.requests.push([index, reqObj]);
                this.handle(reqObj, send, sock, index);
            });
            sock.on("error", () => {});
        });
        return this;
    }

    ofConnection(index, type) {
        return this.requests.filter(([i, r]) => i === index && (!type || r.type === type)).map(([, r]) => r);
    }

    async stop() {
        for (const s of this.sockets) s.terminate();
        await new Promise((resolve) => this.wss.close(resolve));
    }
}

function defaultHandle(req, send) {
    if (req.type === "ping") send(req.id === undefined ? { type: "pong" } : { type: "pong", id: req.id });
    else if (req.id !== undefined) {
        const ack = { type: "ack", id: req.id };
        if (req.type === "publish") ack.seq = 1;
        if (req.type === "subscribe" && req.since) ack.recovered = true;
        send(ack);
    }
}

const FAST = { WebSocket, reconnect: { minDelay: 10, maxDelay: 50 } };

describe("scripted broker", () => {
    let fake;
    const clients = [];
    before(async () => {
        fake = await new FakeBroker().start();
    });
    after(async () => {
        await Promise.all(clients.map((c) => c.close()));
        await fake.stop();
    });

    test("resubscribes exact topics with since = the last epoch/seq seen; patterns without", async () => {
        const f = await new FakeBroker().start();
        try {
            const c = connect(f.url, FAST);
            const got = [];
            const sExact = c.subscribe("orders.42", (m) => got.push(m.seq));
            c.subscribe("orders.*", () => {});
            c.subscribe("news.x", () => {}); // exact, but no message with an epoch: no since
            await sExact.ready;
            assert.deepEqual(
                f.ofConnection(0, "subscribe").map((r) => [r.topic, r.since]),
                [["orders.42", undefined], ["orders.*", undefined], ["news.x", undefined]],
            );
            const send = (o) => f.sockets[0].send(JSON.stringify(o));
            send({ type: "message", topic: "orders.42", seq: 40, epoch: "k3f9", data: 1 });
            send({ type: "message", topic: "orders.42", seq: 41, epoch: "k3f9", data: 2 });
            send({ type: "message", topic: "news.x", seq: 7, data: 3 }); // no epoch: no history
            await waitFor(() => got.length === 2, 3000, "two messages");
            const again = nextEvent(sExact, "subscribed", 5000);
            f.sockets[0].terminate();
            const info = await again;
            assert.deepEqual(info, { recovered: true, resubscribed: true });
            const subs = f.ofConnection(1, "subscribe");
            assert.deepEqual(
                subs.map((r) => [r.topic, r.since]),
                [["orders.42", { epoch: "k3f9", seq: 41 }], ["orders.*", undefined], ["news.x", undefined]],
            );
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("the subscribe ack's epoch/seq is the position; a recovery is reported as 'recovered'", async () => {
        const f = await new FakeBroker({
            handle(req, send) {
                if (req.type === "subscribe") {
                    const ack = { type: "ack", id: req.id, seq: 10, epoch: "E" };
                    if (req.since) ack.recovered = req.since.seq === 10;
                    send(ack);
                } else defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, FAST);
            const s = c.subscribe("h.a", () => {});
            await s.ready;
            const ev = nextEvent(c, "recovered", 5000);
            const subEv = nextEvent(s, "recovered", 5000);
            f.sockets[0].terminate();
            assert.deepEqual(await ev, { topic: "h.a", recovered: true, epoch: "E", seq: 10 });
            assert.equal((await subEv).recovered, true);
            assert.deepEqual(f.ofConnection(1, "subscribe").map((r) => r.since), [{ epoch: "E", seq: 10 }]);
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("a gap notice on an exact topic is reported and recovered at once with since", async () => {
        const f = await new FakeBroker().start();
        try {
            const c = connect(f.url, FAST);
            const s = c.subscribe("h.b", () => {});
            await s.ready;
            const gapEv = nextEvent(c, "gap", 5000);
            const subGap = nextEvent(s, "gap", 5000);
            const rec = nextEvent(s, "recovered", 5000);
            f.sockets[0].send(JSON.stringify({ type: "gap", topic: "h.b", epoch: "E2", seq: 7 }));
            assert.deepEqual(await gapEv, { topic: "h.b", epoch: "E2", seq: 7 });
            assert.deepEqual(await subGap, { topic: "h.b", epoch: "E2", seq: 7 });
            assert.equal((await rec).recovered, true);
            assert.deepEqual(
                f.ofConnection(0, "subscribe").map((r) => r.since),
                [undefined, { epoch: "E2", seq: 7 }],
            );
            assert.equal(c.stats.gaps, 1);
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("an unsubscribed notice ends that subscription and it is not restored on reconnect", async () => {
        const f = await new FakeBroker().start();
        try {
            const c = connect(f.url, FAST);
            const gone = c.subscribe("chat.>", () => {});
            const kept = c.subscribe("chat.room1", () => {});
            await gone.ready;
            await kept.ready;
            const connEv = nextEvent(c, "unsubscribed", 5000);
            const subEv = nextEvent(gone, "unsubscribed", 5000);
            const closedEv = nextEvent(gone, "closed", 5000);
            const notice = { topic: "chat.>", code: "forbidden", message: "not allowed" };
            f.sockets[0].send(JSON.stringify({ type: "unsubscribed", ...notice }));
            assert.deepEqual(await connEv, notice);
            assert.deepEqual(await subEv, notice);
            assert.equal((await closedEv).code, "forbidden");
            assert.equal(gone.closed, true);
            assert.equal(kept.closed, false);
            // Every subscribe of the new socket goes out before the first ack
            // comes back: once `kept` is acknowledged again, all are recorded.
            const again = nextEvent(kept, "subscribed", 5000);
            f.sockets[0].terminate();
            assert.equal((await again).resubscribed, true);
            assert.deepEqual(f.ofConnection(1, "subscribe").map((r) => r.topic), ["chat.room1"]);
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("a bad_since reply makes the client subscribe again without since", async () => {
        const f = await new FakeBroker({
            handle(req, send) {
                if (req.type === "subscribe" && req.since) {
                    send({ type: "error", id: req.id, code: "bad_since", message: "no" });
                } else defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, FAST);
            const s = c.subscribe("a.b", () => {}, { since: { epoch: "e", seq: 3 } });
            assert.deepEqual(await s.ready, { recovered: undefined, resubscribed: false });
            assert.deepEqual(
                f.ofConnection(0, "subscribe").map((r) => r.since),
                [{ epoch: "e", seq: 3 }, undefined],
            );
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("a silent connection is dropped after pingInterval + pingTimeout and reconnected", async () => {
        let silent = true;
        const f = await new FakeBroker({
            handle(req, send) {
                if (!silent) defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, { ...FAST, pingInterval: 100, pingTimeout: 100 });
            await nextEvent(c, "open");
            const started = Date.now();
            const d = await nextEvent(c, "disconnect", 3000);
            assert.equal(d.reason, "keepalive timeout");
            const elapsed = Date.now() - started;
            assert.ok(elapsed >= 150 && elapsed < 1500, `dropped after ${elapsed} ms`);
            assert.ok(f.ofConnection(0, "ping").length >= 1, "an application ping was sent");
            silent = false;
            await waitFor(() => c.state === "open", 3000, "reopen");
            // A connection that answers stays up across several ping periods:
            // counted in pings answered on it, not in a pause (a drop would end
            // the count on this connection and fail the wait).
            const dropped = [];
            c.on("disconnect", (x) => dropped.push(x));
            const current = f.sockets.length - 1;
            const before = f.ofConnection(current, "ping").length;
            await waitFor(() => f.ofConnection(current, "ping").length >= before + 4, 5000, "four more pings answered");
            assert.deepEqual(dropped.filter((x) => x.reason === "keepalive timeout").length, 0);
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("no welcome within connectTimeout: the attempt is abandoned and retried", async () => {
        const f = await new FakeBroker({ welcome: null }).start();
        try {
            const c = connect(f.url, { ...FAST, connectTimeout: 100 });
            const d = await nextEvent(c, "disconnect", 3000);
            assert.equal(d.reason, "connect timeout");
            await waitFor(() => f.sockets.length >= 2, 3000, "second attempt");
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("a broker speaking another protocol version: closed, not retried", async () => {
        const f = await new FakeBroker({ welcome: { ...WELCOME, protocol: 2 } }).start();
        try {
            const c = connect(f.url, FAST);
            c.on("error", () => {});
            const info = await nextEvent(c, "close", 3000);
            assert.equal(info.error.code, "protocol");
            assert.equal(c.state, "closed");
            await new Promise((r) => setTimeout(r, 100));
            assert.equal(f.sockets.length, 1);
        } finally {
            await f.stop();
        }
    });

    test("close 1003 (a client bug a reconnect would repeat) is final", async () => {
        const c = connect(fake.url, FAST);
        clients.push(c);
        c.on("error", () => {});
        await nextEvent(c, "open");
        const n = fake.sockets.length;
        fake.sockets[n - 1].close(1003, "binary");
        const info = await nextEvent(c, "close", 3000);
        assert.equal(info.code, 1003);
        assert.equal(info.error.code, "protocol");
        assert.equal(info.error.closeCode, 1003);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(fake.sockets.length, n);
    });

    test("token goes in the query string; a token function is called per connection", async () => {
        let calls = 0;
        const c = connect(fake.url, { ...FAST, token: async () => `tok-${++calls}` });
        clients.push(c);
        await nextEvent(c, "open");
        const first = fake.sockets.length - 1;
        assert.equal(fake.urls[first], "/ws?token=tok-1");
        fake.sockets[first].terminate();
        await waitFor(() => fake.sockets.length === first + 2 && c.state === "open", 3000, "reconnect");
        assert.equal(fake.urls[first + 1], "/ws?token=tok-2");
    });

    test("unknown message types and members are ignored; errors without id are emitted", async () => {
        const c = connect(fake.url, FAST);
        clients.push(c);
        await nextEvent(c, "open");
        const sock = fake.sockets.at(-1);
        const got = [];
        await c.subscribe("u.x", (m) => got.push(m.data)).ready;
        const err = nextEvent(c, "error");
        sock.send(JSON.stringify({ type: "future", x: 1 }));
        sock.send(JSON.stringify({ type: "message", topic: "u.x", seq: 1, data: 5, extra: { a: 1 } }));
        sock.send(JSON.stringify({ type: "error", code: "rate_limited", message: "slow down" }));
        assert.equal((await err).code, "rate_limited");
        await waitFor(() => got.length === 1, 3000, "message");
        assert.equal(c.state, "open");
    });

    test("presence() and presenceStats() send their requests and resolve with the answers", async () => {
        const f = await new FakeBroker({
            handle(req, send) {
                if (req.type === "presence") {
                    send({
                        type: "presence",
                        id: req.id,
                        topic: req.topic,
                        members: [{ client: "c-1", user: "alice" }, { client: "c-2", user: null }],
                    });
                } else if (req.type === "presence_stats") {
                    send({ type: "presence_stats", id: req.id, topic: req.topic, clients: 2, users: 1 });
                } else if (req.topic === "secret.room") {
                    send({ type: "error", id: req.id, code: "forbidden", message: "not allowed" });
                } else defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, FAST);
            await nextEvent(c, "open");
            assert.deepEqual(await c.presence("chat.room1"), {
                topic: "chat.room1",
                members: [{ client: "c-1", user: "alice" }, { client: "c-2", user: null }],
            });
            assert.deepEqual(await c.presenceStats("chat.room1"), { topic: "chat.room1", clients: 2, users: 1 });
            assert.deepEqual(
                f.ofConnection(0).map((r) => [r.type, r.topic, typeof r.id]),
                [["presence", "chat.room1", "number"], ["presence_stats", "chat.room1", "number"]],
            );
            await c.close();
            await assert.rejects(c.presence("chat.room1"), { code: "closed" });
        } finally {
            await f.stop();
        }
    });

    test("presence errors reject with the broker's code; an offline request is not queued", async () => {
        const f = await new FakeBroker({
            handle(req, send) {
                if (req.type.startsWith("presence")) {
                    send({ type: "error", id: req.id, code: "forbidden", message: "no subscribe right" });
                } else defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, FAST);
            const offline = c.presence("chat.room1"); // before the welcome
            await assert.rejects(offline, { code: "disconnected", topic: "chat.room1" });
            await nextEvent(c, "open");
            await assert.rejects(c.presence("chat.room1"), { code: "forbidden", topic: "chat.room1" });
            await assert.rejects(c.presenceStats("chat.room2"), { code: "forbidden", topic: "chat.room2" });
            assert.deepEqual(f.ofConnection(0).map((r) => r.type), ["presence", "presence_stats"]);
            await assert.rejects(c.presence(""), TypeError);
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("a presence request in flight when the socket drops rejects with disconnected", async () => {
        const f = await new FakeBroker({
            handle(req, send, sock) {
                if (req.type === "presence") sock.terminate();
                else defaultHandle(req, send);
            },
        }).start();
        try {
            const c = connect(f.url, FAST);
            await nextEvent(c, "open");
            await assert.rejects(c.presence("chat.room1"), { code: "disconnected" });
            await c.close();
        } finally {
            await f.stop();
        }
    });

    test("join and leave are emitted on the connection and on matching subscriptions; from is kept", async () => {
        const c = connect(fake.url, FAST);
        clients.push(c);
        await nextEvent(c, "open");
        const sock = fake.sockets.at(-1);
        const room = c.subscribe("chat.room1", () => {});
        const all = c.subscribe("chat.*", () => {});
        const other = c.subscribe("news.x", () => {});
        const got = { conn: [], room: [], all: [], other: [] };
        c.on("join", (i) => got.conn.push(["join", i]));
        c.on("leave", (i) => got.conn.push(["leave", i]));
        for (const [name, sub] of [["room", room], ["all", all], ["other", other]]) {
            sub.on("join", (i) => got[name].push(["join", i]));
            sub.on("leave", (i) => got[name].push(["leave", i]));
        }
        await Promise.all([room.ready, all.ready, other.ready]);
        const msgs = [];
        room.on("closed", () => {});
        c.on("message", (m) => msgs.push(m));
        const member = { client: "c-9", user: "bob" };
        sock.send(JSON.stringify({ type: "join", topic: "chat.room1", member }));
        sock.send(JSON.stringify({ type: "message", topic: "chat.room1", seq: 1, data: { from: "forged" }, from: member }));
        sock.send(JSON.stringify({ type: "leave", topic: "chat.room1", member: { client: "c-9" } }));
        sock.send(JSON.stringify({ type: "join", topic: "chat.room1" })); // no member: ignored
        await waitFor(() => got.conn.length === 2 && msgs.length === 1, 3000, "join, message, leave");
        const expect = [
            ["join", { topic: "chat.room1", member }],
            ["leave", { topic: "chat.room1", member: { client: "c-9", user: null } }],
        ];
        assert.deepEqual(got.conn, expect);
        assert.deepEqual(got.room, expect);
        assert.deepEqual(got.all, expect);
        assert.deepEqual(got.other, []);
        assert.deepEqual(msgs[0].from, member);
        assert.deepEqual(msgs[0].data, { from: "forged" });
    });

    test("http:// URLs map to ws://", () => {
        const c = connect(fake.url.replace("ws:", "http:"), FAST);
        clients.push(c);
        assert.equal(c.url, fake.url);
        assert.throws(() => connect("ftp://x/ws", FAST), TypeError);
        assert.throws(() => connect("not a url", FAST), TypeError);
    });
});

describe("topic helpers", () => {
    test("matches() follows PROTOCOL.md section 5.2", () => {
        const table = [
            ["prices.btc.usd", "prices.btc.usd", true],
            ["prices.btc.usd", "prices.btc", false],
            ["prices.btc.usd", "prices.btc.usd.x", false],
            ["prices.*.usd", "prices.btc.usd", true],
            ["prices.*.usd", "prices.usd", false],
            ["prices.*.usd", "prices.btc.x.usd", false],
            ["prices.>", "prices.btc", true],
            ["prices.>", "prices.btc.usd", true],
            ["prices.>", "prices", false],
            ["*", "a", true],
            ["*", "a.b", false],
            ["*", "$sys", false],
            [">", "a", true],
            [">", "a.b.c", true],
            [">", "$sys.stats", false],
            ["*.stats", "$sys.stats", false],
            ["$sys.>", "$sys.stats", true],
            ["$sys.>", "$sys.stats.conns", true],
            ["$sys.>", "$sys", false],
            ["$sys.*", "$sys.stats", true],
            ["a.*", "a.$b", true],
            ["a.*.>", "a.b", false],
            ["a.*.>", "a.b.c.d", true],
        ];
        for (const [pattern, topic, want] of table) {
            assert.equal(matches(pattern, topic), want, `${pattern} vs ${topic}`);
        }
    });

    test("isExactTopic()", () => {
        assert.equal(isExactTopic("a.b"), true);
        assert.equal(isExactTopic("a.*"), false);
        assert.equal(isExactTopic("a.>"), false);
        assert.equal(isExactTopic("a*.b"), true); // not a wildcard token
    });
});
