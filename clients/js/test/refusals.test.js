// Refused credentials and tokens (PROTOCOL.md 8 and 10), getToken, and the
// requests whose replies a promise waits for, against the real broker:
// - a close 4001/4002/4003 raises an "error" event with closeCode and
//   closeReason, and without getToken (or after 4003) the client stops: the
//   broker sees one attempt, not a reconnect loop;
// - getToken is called on connect, on reconnect, after 4001/4002, and before
//   the token's exp (sent in an `auth` request on the open connection);
// - publish() over the broker's rate limit rejects with "rate_limited";
// - subscribe with since / history on a topic already held replays.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";

import { connect, State } from "../wsbroker.js";
import { Broker, WebSocket, metrics, nextEvent, startBroker, waitFor, withBroker, within } from "./helpers.js";

const SECRET = "js-test-secret-0123456789abcdef";
const ORIGIN = "https://app.example";
const FAST = { reconnect: { minDelay: 20, maxDelay: 200 } };

/** `ws`'s WebSocket sending an Origin header, as every browser does. */
function withOrigin(origin) {
    return class extends WebSocket {
        constructor(url) {
            super(url, { origin });
        }
    };
}

function b64url(text) {
    return Buffer.from(text).toString("base64url");
}

function jwt(claims, secret = SECRET) {
    const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
    const body = b64url(JSON.stringify(claims));
    const sig = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
    return `${head}.${body}.${sig}`;
}

const nowS = () => Math.floor(Date.now() / 1000);
const grant = (sub, extra = {}) => ({ sub, subscribe: ["t.>"], publish: ["t.>"], ...extra });

const AUTH = ["--auth-required", "true", "--auth-jwt-secret", SECRET, "--auth-leeway", "0"];

describe("refused credentials", () => {
    test("4001 without getToken: an error event with the code and reason, then closed, one attempt", async () => {
        await withBroker(AUTH, async (broker, open) => {
            const errors = [];
            const c = open(broker.url, { ...FAST, WebSocket: withOrigin(ORIGIN), token: "not-a-jwt" });
            c.on("error", (e) => errors.push(e));
            const closed = await nextEvent(c, "close");
            assert.equal(c.state, State.CLOSED);
            assert.equal(closed.code, 4001);
            assert.equal(errors.length, 1);
            assert.equal(errors[0].code, "invalid_token");
            assert.equal(errors[0].closeCode, 4001);
            assert.equal(errors[0].closeReason, "invalid token");
            assert.equal(closed.error, errors[0]);
            // Closed is final (no timer left): the broker saw exactly one attempt.
            assert.equal((await metrics(broker))["wsbroker_handshake_failures_total"], 1);
        });
    });

    test("4003 stops even with getToken", async () => {
        await withBroker(["--allowed-origins", ORIGIN], async (broker, open) => {
            let calls = 0;
            const c = open(broker.url, {
                ...FAST,
                WebSocket: withOrigin("https://evil.example"),
                getToken: async () => `token-${++calls}`,
            });
            const err = await nextEvent(c, "error");
            assert.equal(err.code, "origin_not_allowed");
            assert.equal(err.closeCode, 4003);
            assert.equal(err.closeReason, "origin not allowed");
            await waitFor(() => c.state === State.CLOSED, 3000, "closed");
            assert.equal(calls, 1);
            assert.equal((await metrics(broker))['wsbroker_close_frames_total{code="4003"}'], 1);
        });
    });

    test("after 4002 (expired) getToken is asked again and the client reconnects with the new token", async () => {
        await withBroker(AUTH, async (broker, open) => {
            const tokens = [jwt(grant("old", { exp: nowS() - 60 })), jwt(grant("fresh", { exp: nowS() + 600 }))];
            let calls = 0;
            const errors = [];
            const c = open(broker.url, { ...FAST, WebSocket: withOrigin(ORIGIN), getToken: async () => tokens[calls++] });
            c.on("error", (e) => errors.push(e));
            const welcome = await nextEvent(c, "open");
            assert.equal(welcome.user, "fresh");
            assert.equal(calls, 2);
            assert.deepEqual(errors.map((e) => [e.code, e.closeCode, e.closeReason]), [["token_expired", 4002, "token expired"]]);
        });
    });

    test("after 4001 getToken is asked again; the same refused token again stops the client", async () => {
        await withBroker(AUTH, async (broker, open) => {
            let calls = 0;
            const good = jwt(grant("good", { exp: nowS() + 600 }));
            const c = open(broker.url, {
                ...FAST,
                WebSocket: withOrigin(ORIGIN),
                getToken: async () => (++calls === 1 ? jwt(grant("x"), "wrong-secret") : good),
            });
            assert.equal((await nextEvent(c, "open")).user, "good");
            assert.equal(calls, 2);
            await c.close();

            // A token source that keeps returning the refused token.
            const bad = jwt(grant("x"), "wrong-secret");
            let badCalls = 0;
            const d = open(broker.url, { ...FAST, WebSocket: withOrigin(ORIGIN), getToken: () => (badCalls++, bad) });
            const errors = [];
            d.on("error", (e) => errors.push(e.code));
            await nextEvent(d, "close");
            assert.equal(d.state, State.CLOSED);
            assert.deepEqual(errors, ["invalid_token", "token"]);
            assert.equal(badCalls, 2);
            // 1 refusal for c's first token, 1 for d's only attempt.
            assert.equal((await metrics(broker))['wsbroker_close_frames_total{code="4001"}'], 2);
        });
    });

    test("getToken is called on every reconnect", async () => {
        const first = await startBroker({ args: AUTH });
        const port = first.port;
        let second;
        let calls = 0;
        const c = connect(first.url, {
            ...FAST,
            WebSocket,
            getToken: async () => jwt(grant(`call-${++calls}`)),
        });
        try {
            assert.equal((await nextEvent(c, "open")).user, "call-1");
            await first.kill();
            // Listen first: the client may be back before start() returns.
            const reopened = nextEvent(c, "open", 15000);
            second = new Broker({ args: AUTH, port });
            await second.start();
            const welcome = await reopened;
            assert.equal(welcome.user, `call-${calls}`);
            assert.ok(calls >= 2, `getToken calls: ${calls}`);
        } finally {
            await c.close();
            first.cleanup();
            if (second) {
                await second.stop();
                second.cleanup();
            }
        }
    });

    test("before exp, getToken's fresh token is sent in an auth request and the session outlives the first token", async () => {
        await withBroker(AUTH, async (broker, open) => {
            const exp = nowS() + 2;
            const tokens = [jwt(grant("s", { iat: nowS(), exp })), jwt(grant("s", { exp: nowS() + 600 }))];
            let calls = 0;
            const events = [];
            const c = open(broker.url, { ...FAST, WebSocket, getToken: async () => tokens[Math.min(calls++, 1)] });
            c.on("disconnect", (d) => events.push(d.code));
            c.on("error", (e) => events.push(e.code));
            await nextEvent(c, "open");
            await waitFor(() => calls >= 2, 5000, "the proactive getToken call");
            // Past the first token's exp (the broker would close with 4002 had
            // the auth request not replaced it), the session is still there.
            await waitFor(() => Date.now() > exp * 1000 + 1500, 10000, "the first token's exp");
            assert.equal(typeof (await c.ping()), "number");
            assert.equal(c.state, State.OPEN);
            assert.deepEqual(events, []);
            assert.equal(c.stats.connects, 1);
        });
    });
});

describe("a getToken that keeps returning the same token", () => {
    test("past exp it is asked again at most about once a second, not in a loop", async () => {
        // A 30 s leeway: the broker keeps the session open past exp, so the
        // client's own retry schedule is all that paces getToken.
        const args = ["--auth-required", "true", "--auth-jwt-secret", SECRET, "--auth-leeway", "30"];
        await withBroker(args, async (broker, open) => {
            const exp = nowS() + 1;
            const token = jwt(grant("same", { iat: nowS(), exp }));
            let calls = 0;
            const c = open(broker.url, { ...FAST, WebSocket, getToken: async () => (calls++, token) });
            await nextEvent(c, "open");
            await waitFor(() => Date.now() > exp * 1000 + 2500, 10000, "2.5 s past exp");
            // Fewer calls only on a slower machine: the bound cannot fail by slowness.
            assert.ok(calls < 10, `getToken called ${calls} times in ~3.5 s`);
            assert.equal(c.state, State.OPEN);
        });
    });
});

describe("replies a promise waits for", () => {
    test("publish() over the rate limit rejects with rate_limited (the error carries the id)", async () => {
        await withBroker(["--rate-messages", "1", "--rate-burst", "1"], async (broker, open) => {
            const c = open(broker.url, { ...FAST, WebSocket });
            await nextEvent(c, "open");
            const results = await within(
                Promise.allSettled(Array.from({ length: 8 }, (_, i) => c.publish("t.rate", i))),
                5000,
                "every publish() to settle",
            );
            const rejected = results.filter((r) => r.status === "rejected").map((r) => r.reason.code);
            assert.ok(rejected.length >= 1, JSON.stringify(results));
            assert.ok(rejected.every((code) => code === "rate_limited"), rejected.join());
        });
    });
});

describe("since and history on a topic already held", () => {
    const RULES = ["--history", JSON.stringify([{ pattern: "h.>", size: 1000 }])];

    test("subscribe with since on a held topic replays for that subscription only", async () => {
        await withBroker(RULES, async (broker, open) => {
            const c = open(broker.url, { ...FAST, WebSocket });
            const first = [];
            let epoch;
            const s1 = c.subscribe("h.a", (m) => {
                epoch = m.epoch;
                first.push(m.seq);
            });
            await s1.ready;
            for (let i = 0; i < 3; i++) await broker.publish({ topic: "h.a", data: i });
            await waitFor(() => first.length === 3, 3000, "three messages");
            const second = [];
            const s3 = c.subscribe("h.a", (m) => second.push(m.seq), { since: { epoch, seq: 1 } });
            const info = await s3.ready;
            assert.deepEqual(info, { recovered: true, resubscribed: false });
            await waitFor(() => second.length === 2, 3000, "the replay");
            assert.deepEqual(second, [2, 3]);
            await broker.publish({ topic: "h.a", data: 3 });
            await waitFor(() => first.length === 4 && second.length === 3, 3000, "the live message on both");
            assert.deepEqual(first, [1, 2, 3, 4]); // no duplicate for the first subscription
            assert.deepEqual(second, [2, 3, 4]);
        });
    });

    test("subscribe with history: N gets the last N, on a new and on a held topic", async () => {
        await withBroker(RULES, async (broker, open) => {
            for (let i = 0; i < 5; i++) await broker.publish({ topic: "h.b", data: i });
            const c = open(broker.url, { ...FAST, WebSocket });
            const a = [];
            const s1 = c.subscribe("h.b", (m) => a.push(m.seq), { history: 2 });
            await s1.ready;
            await waitFor(() => a.length === 2, 3000, "two");
            assert.deepEqual(a, [4, 5]);
            const b = [];
            const s2 = c.subscribe("h.b", (m) => b.push(m.seq), { history: 3 });
            await s2.ready;
            await waitFor(() => b.length === 3, 3000, "three");
            assert.deepEqual(b, [3, 4, 5]);
            assert.deepEqual(a, [4, 5]);
        });
    });
});
