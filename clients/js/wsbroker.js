// wsbroker client: one ES module, no dependencies, for browsers and Node.
//
// It speaks wire protocol v1 (protocol/PROTOCOL.md) over one WebSocket:
//
//   const c = connect("ws://127.0.0.1:8080/ws");
//   const s = c.subscribe("prices.*.usd", (msg) => console.log(msg.topic, msg.data));
//   const { seq } = await c.publish("prices.btc.usd", { bid: 64000.5 });
//   await s.unsubscribe();
//   await c.close();
//
// Contracts a user can rely on:
// - State is "connecting", "open" or "closed". "open" starts when the broker's
//   `welcome` arrives; "closed" is final (close() was called, reconnecting is
//   off, or the broker closed with a code that says a reconnect would repeat a
//   client bug: 1002, 1003, 1007, 1009).
// - Subscriptions live in the client, not in one socket: after a reconnect every
//   live pattern is subscribed again, exact topics with `since` when the last
//   message seen on them carried an `epoch` (so history recovery works wherever
//   the broker keeps history; the "recovered" event says whether it could).
//   A pattern inside a stream (PROTOCOL.md 3.1b: its ack names the stream)
//   is subscribed again with `since` = the stream's last seq it saw, so every
//   missed message of every matching topic is replayed (or "recovered" says
//   false). A
//   pattern subscribed with `history` (last value on wildcards, PROTOCOL.md
//   3.1a) asks for it again, and each subscription skips the topics' messages
//   it has already had, so only what changed while offline is handed over. A
//   `gap` notice (slow consumer) on an exact topic, or on a subscription inside a
//   stream (the gap names the stream), is recovered the same way, at once, and
//   reported as a "gap" event; a loss the broker could not recover (a gap with
//   `to`: trimmed from the stream's log, or a restart) is a "loss" event. A pattern is subscribed once per socket however
//   many Subscription objects share it, and every message is handed once to each
//   Subscription whose pattern matches its topic.
// - publish() resolves with the broker's ack ({seq, topic}) or rejects with a
//   WsbrokerError whose `code` is a broker error code (section 7) or one of the
//   client codes below. Publishes made while not open wait in a bounded queue
//   (maxQueue) and are sent, in order, after the next welcome; a publish that was
//   sent but not acknowledged when the socket dropped is rejected with
//   "disconnected" and never resent (delivery is at most once: it may or may not
//   have been published).
// - presence(topic) / presenceStats(topic) resolve with the broker's answer
//   ({topic, members:[{client, user}]} / {topic, clients, users}) or reject as
//   publish() does; they are not queued while disconnected ("disconnected").
// - Keepalive: when nothing has been received for pingInterval ms the client
//   sends an application `ping`; if nothing at all arrives within pingTimeout ms
//   after it, the socket is considered dead, dropped and reconnected.
//
// - Credentials: `getToken` (an async function returning a token) is called
//   before the first connection, before every reconnect, after the broker
//   refused the token (close 4001 "invalid token", 4002 "token expired") and
//   before the current token's `exp` (read, not verified, from the JWT
//   payload), when the fresh token is sent on the open connection in an `auth`
//   request. A close with a code in 4000-4099 ("do not reconnect with the same
//   credentials", PROTOCOL.md 8) raises an "error" event (WsbrokerError with
//   closeCode and closeReason); the client then reconnects only after 4001 or
//   4002, only with getToken, and never with the token just refused. Otherwise
//   (a fixed token, 4003 "origin not allowed", other 40xx) it closes for good.
//
// Client error codes (besides the broker's): "closed" (the client was closed),
// "disconnected" (the socket dropped before the reply), "queue_full" (offline
// publish queue at maxQueue), "too_large" (the request exceeds the broker's
// announced max_message_size, checked before sending because the broker would
// close the socket with 1009), "protocol" (unsupported protocol version or a
// close code that forbids reconnecting), "timeout" (no reply to ping()),
// "invalid_token", "token_expired", "origin_not_allowed", "refused" (the
// broker closed with 4001, 4002, 4003, or another code in 4000-4099).

export const VERSION = "0.1.0";
export const PROTOCOL_VERSION = 1;

/** Connection states. */
export const State = Object.freeze({
    CONNECTING: "connecting",
    OPEN: "open",
    CLOSED: "closed",
});

// Close codes after which the protocol says not to reconnect (section 8).
const FATAL_CLOSE_CODES = new Set([1002, 1003, 1007, 1009]);
// Close codes 4000-4099: "do not reconnect with the same credentials" (section 8).
const CREDENTIALS_CLOSE_MIN = 4000;
const CREDENTIALS_CLOSE_MAX = 4099;
// A token is refreshed when this share of its lifetime has passed.
const TOKEN_REFRESH_AT = 0.85;
// Errors to an unsubscribe that mean there is nothing left to remove.
const UNSUBSCRIBE_DONE = new Set(["not_subscribed", "bad_topic", "bad_field"]);
// Largest id the broker accepts (2^53 - 1, section 2.1).
const MAX_ID = Number.MAX_SAFE_INTEGER;
// Topics a last-value pattern subscription remembers positions of (oldest
// forgotten first): beyond that, a reconnect may hand over a topic's latest
// message once more.
const SEEN_TOPICS_MAX = 10000;

const DEFAULTS = Object.freeze({
    token: undefined,
    getToken: undefined,
    reconnect: { minDelay: 500, maxDelay: 30000, factor: 2, jitter: 0.5, maxAttempts: Infinity },
    maxQueue: 1000,
    pingInterval: 20000,
    pingTimeout: 10000,
    connectTimeout: 10000,
    bufferSize: 1000,
    WebSocket: undefined,
    // SSE fallback (PROTOCOL.md 15): with "sse" listed, after sseAfter failed
    // WebSocket attempts (or with no WebSocket at all) the client receives
    // over EventSource and publishes with fetch POST /api/publish.
    transports: ["websocket"],
    sseAfter: 2,
    sseUrl: undefined,
    EventSource: undefined,
});

/** An error reported by the broker (code from PROTOCOL.md section 7) or by the client. */
export class WsbrokerError extends Error {
    constructor(code, message, extra) {
        super(message);
        this.name = "WsbrokerError";
        this.code = code;
        if (extra) Object.assign(this, extra);
    }
}

/** True when topic `topic` matches pattern `pattern` (PROTOCOL.md section 5.2). */
export function matches(pattern, topic) {
    const p = pattern.split(".");
    const t = topic.split(".");
    // A wildcard in the first position never matches a reserved `$` topic.
    if ((p[0] === "*" || p[0] === ">") && t[0].startsWith("$")) return false;
    for (let i = 0; i < p.length; i++) {
        if (p[i] === ">") return t.length > i;
        if (i >= t.length) return false;
        if (p[i] !== "*" && p[i] !== t[i]) return false;
    }
    return p.length === t.length;
}

/** True when `pattern` has no wildcard token (it names one topic). */
export function isExactTopic(pattern) {
    return !pattern.split(".").some((tok) => tok === "*" || tok === ">");
}

// Listener exceptions must not break the client's state machine, yet must not be
// swallowed either: rethrow them on a fresh stack, as a DOM event dispatch does.
function safeCall(fn, args) {
    try {
        fn(...args);
    } catch (err) {
        queueMicrotask(() => {
            throw err;
        });
    }
}

/** A tiny event emitter shared by Connection and Subscription. */
class Emitter {
    #listeners = new Map();

    /** Adds a listener; returns a function that removes it. */
    on(event, fn) {
        if (typeof fn !== "function") throw new TypeError("listener must be a function");
        let set = this.#listeners.get(event);
        if (!set) this.#listeners.set(event, (set = new Set()));
        set.add(fn);
        return () => this.off(event, fn);
    }

    off(event, fn) {
        this.#listeners.get(event)?.delete(fn);
    }

    once(event, fn) {
        const off = this.on(event, (...args) => {
            off();
            fn(...args);
        });
        return off;
    }

    _emit(event, ...args) {
        const set = this.#listeners.get(event);
        if (!set || set.size === 0) return false;
        for (const fn of [...set]) safeCall(fn, args);
        return true;
    }
}

// A promise whose rejection is not reported as unhandled when nobody awaits it
// (Node would otherwise kill the process), while those who await it still see it.
function deferred() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    promise.catch(() => {});
    return { promise, resolve, reject };
}

function utf8Length(text) {
    let n = 0;
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c < 0x80) n += 1;
        else if (c < 0x800) n += 2;
        else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
            n += 4;
            i++;
        } else n += 3;
    }
    return n;
}

function resolveUrl(url) {
    let s = String(url);
    // A path alone ("/ws") is relative to the page that loaded the module.
    if (s.startsWith("/") && globalThis.location && globalThis.location.host) {
        const proto = globalThis.location.protocol === "https:" ? "wss:" : "ws:";
        s = `${proto}//${globalThis.location.host}${s}`;
    }
    const u = new URL(s); // throws a TypeError on a malformed URL
    if (u.protocol === "http:") u.protocol = "ws:";
    else if (u.protocol === "https:") u.protocol = "wss:";
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
        throw new TypeError(`wsbroker: URL must be ws://, wss://, http:// or https://, got ${u.protocol}`);
    }
    return u;
}

// The `exp` and `iat` claims (seconds) of a JWT, read WITHOUT verifying it:
// only to know when to ask for a fresh one. {} for anything else.
function tokenTimes(token) {
    try {
        const part = String(token).split(".")[1];
        if (!part) return {};
        let b64 = part.replace(/-/g, "+").replace(/_/g, "/");
        while (b64.length % 4) b64 += "=";
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const claims = JSON.parse(new TextDecoder().decode(bytes));
        if (claims === null || typeof claims !== "object") return {};
        return {
            exp: Number.isFinite(claims.exp) ? claims.exp : undefined,
            iat: Number.isFinite(claims.iat) ? claims.iat : undefined,
        };
    } catch {
        return {};
    }
}

// The error for a close with a code in 4000-4099 (PROTOCOL.md section 8).
function refusalError(code, reason) {
    const extra = { closeCode: code, closeReason: reason };
    const msg = `the broker closed the connection with ${code} (${reason})`;
    if (code === 4001) return new WsbrokerError("invalid_token", msg, extra);
    if (code === 4002) return new WsbrokerError("token_expired", msg, extra);
    if (code === 4003) return new WsbrokerError("origin_not_allowed", msg, extra);
    return new WsbrokerError("refused", msg, extra);
}

/**
 * One subscription to a pattern. Messages go to the callback given to
 * subscribe(), or, without one, are buffered (at most bufferSize, oldest dropped
 * and counted in `dropped`) for async iteration.
 */
export class Subscription extends Emitter {
    #conn;
    #callback;
    #buffer = [];
    #waiters = [];
    #bufferSize;
    #closed = false;
    #error = null;
    #ready = deferred();
    #active = false;
    #exact;
    #last = null; // {epoch, seq} of the last message handed over (exact topics)
    #seen = null; // topic -> {epoch, seq}: a last-value pattern's, bounded (_trackTopics)
    #held = false; // waiting for the ack of its own replay: takes nothing before

    constructor(conn, topic, callback, bufferSize) {
        super();
        this.#conn = conn;
        this.#callback = callback;
        this.#bufferSize = bufferSize;
        this.#exact = isExactTopic(topic);
        /** The pattern, exactly as given to subscribe(). */
        this.topic = topic;
        /** Messages dropped because the iteration buffer was full. */
        this.dropped = 0;
        /** Messages handed to this subscription. */
        this.received = 0;
    }

    /** Resolves with {recovered} on the first ack; rejects if the broker refuses the pattern. */
    get ready() {
        return this.#ready.promise;
    }

    /** True while the broker has acknowledged this pattern on the current socket. */
    get active() {
        return this.#active && !this.#closed;
    }

    /** True once unsubscribed, refused by the broker, or the connection was closed. */
    get closed() {
        return this.#closed;
    }

    /** Stops the subscription; resolves when the broker has acknowledged (or at once when offline). */
    unsubscribe() {
        if (this.#closed) return Promise.resolve();
        this._end(null);
        return this.#conn._unsubscribe(this);
    }

    [Symbol.asyncIterator]() {
        if (this.#callback) {
            throw new TypeError("wsbroker: a subscription with a callback cannot also be iterated");
        }
        return {
            next: () => {
                if (this.#buffer.length > 0) {
                    return Promise.resolve({ value: this.#buffer.shift(), done: false });
                }
                if (this.#closed) {
                    if (this.#error) {
                        const err = this.#error;
                        this.#error = null; // reported once; later calls just end
                        return Promise.reject(err);
                    }
                    return Promise.resolve({ value: undefined, done: true });
                }
                return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
            },
            // `break` out of for-await ends the subscription.
            return: async () => {
                await this.unsubscribe();
                return { value: undefined, done: true };
            },
            [Symbol.asyncIterator]() {
                return this;
            },
        };
    }

    // --- called by Connection only ---

    _deliver(msg) {
        if (this.#closed || this.#held) return;
        // A replay asked for by another subscription of this topic (since,
        // history) repeats messages this one has had: each gets a message once.
        if (this.#exact && typeof msg.epoch === "string" && typeof msg.seq === "number") {
            const last = this.#last;
            if (last && last.epoch === msg.epoch && msg.seq <= last.seq) return;
            this.#last = { epoch: msg.epoch, seq: msg.seq };
        } else if (this.#seen && typeof msg.epoch === "string" && typeof msg.seq === "number") {
            // A last-value pattern asks its replay again after a reconnect:
            // the latest message of a topic it has already had is not repeated.
            const last = this.#seen.get(msg.topic);
            if (last && last.epoch === msg.epoch && msg.seq <= last.seq) return;
            this.#seen.delete(msg.topic); // re-inserted last: the map is oldest-first
            this.#seen.set(msg.topic, { epoch: msg.epoch, seq: msg.seq });
            if (this.#seen.size > SEEN_TOPICS_MAX) this.#seen.delete(this.#seen.keys().next().value);
        }
        this.received++;
        if (this.#callback) {
            safeCall(this.#callback, [msg, this]);
            return;
        }
        const waiter = this.#waiters.shift();
        if (waiter) {
            waiter.resolve({ value: msg, done: false });
            return;
        }
        if (this.#buffer.length >= this.#bufferSize) {
            this.#buffer.shift();
            this.dropped++;
        }
        this.#buffer.push(msg);
    }

    // A pattern subscribed with history (last value on wildcards): remember
    // the position per topic, so the replay a reconnect asks for again hands
    // over only what is new.
    _trackTopics() {
        if (!this.#seen) this.#seen = new Map();
    }

    // Messages before the ack of this subscription's own replay are in the
    // replay (the broker answers in order): none is taken until then.
    _hold() {
        this.#held = true;
    }

    get _held() {
        return this.#held;
    }

    _subscribed(info) {
        if (this.#closed) return;
        this.#held = false;
        this.#active = true;
        this.#ready.resolve(info);
        this._emit("subscribed", info);
    }

    _inactive() {
        this.#active = false;
    }

    _end(err) {
        if (this.#closed) return;
        this.#closed = true;
        this.#active = false;
        if (err) {
            this.#error = err;
            this.#ready.reject(err);
            this._emit("error", err);
        } else {
            this.#ready.reject(new WsbrokerError("closed", "subscription closed before it was acknowledged"));
        }
        const waiters = this.#waiters.splice(0);
        if (err && waiters.length > 0) this.#error = null;
        for (const w of waiters) {
            if (err) w.reject(err);
            else w.resolve({ value: undefined, done: true });
        }
        this._emit("closed", err);
    }
}

/**
 * A connection to one broker, reconnecting by itself. Create it with connect().
 * Events: "state" (state, previous), "open" (welcome), "disconnect"
 * ({code, reason, reconnectIn}), "close" ({code, reason, error}), "error"
 * (WsbrokerError), "message" (every message frame, before subscriptions),
 * "recovered" ({topic, recovered, epoch, seq}: the ack of a subscribe that
 * asked to recover with since; recovered false means messages were lost),
 * "gap" ({topic, epoch, seq[, stream][, to]}: the broker dropped this topic's messages after
 * seq because we read too slowly; an exact-topic subscription recovers by
 * itself, a topic reached only through a pattern does not; inside a stream
 * `stream` is set and `topic` is the subscription, pattern or topic, which
 * recovers by itself), "loss" ({topic, stream, epoch, seq, to}: a stream
 * subscription's messages after seq up to `to` are lost for good: no
 * longer in the stream's log, or the broker restarted (epoch changed; seq
 * is then 0); emitted after the "gap" with the same info), "unsubscribed"
 * ({topic, code, message}: the broker removed that subscription, e.g. after
 * an auth whose token does not allow it; it is not restored on reconnect and
 * its Subscription objects end with that error), "join" / "leave" ({topic,
 * member: {client, user}}: a connection subscribed to or left an exact topic
 * whose rule has join_leave; also emitted on each matching Subscription).
 * Messages of topics whose rule has `publisher` carry `from: {client, user}`,
 * stamped by the broker (a client cannot forge it).
 */
export class Connection extends Emitter {
    #url;
    #opts;
    #WebSocket;
    #ws = null;
    #state = State.CONNECTING;
    #welcome = null;
    #welcomed = false; // the current socket has received its welcome
    #nextId = 1;
    #pending = new Map(); // id -> request waiting for its reply on the current socket
    #queue = []; // publishes waiting for the socket to open
    #patterns = new Map(); // pattern -> { subs: Set<Subscription>, inflight: id|null, active, acked }
    #positions = new Map(); // exact topic -> { epoch, seq } of the last message seen on it
    #attempt = 0;
    #reconnectTimer = null;
    #connectTimer = null;
    #pingTimer = null;
    #deadTimer = null;
    #lastRx = 0;
    #closePromise = null;
    #token = null; // the token sent with the current (or last) socket or auth request
    #tokenAt = 0; // when it was obtained (Date.now())
    #refusedToken = null; // the token the broker just refused with 4001/4002
    #refreshTimer = null;
    #useSse = false; // the SSE fallback took over (sticky)
    #wsFailures = 0; // WebSocket attempts that never got a welcome

    constructor(url, options = {}) {
        super();
        this.#url = resolveUrl(url);
        const reconnect =
            options.reconnect === false
                ? false
                : { ...DEFAULTS.reconnect, ...(options.reconnect || {}) };
        this.#opts = { ...DEFAULTS, ...options, reconnect };
        this.#WebSocket = this.#opts.WebSocket || globalThis.WebSocket;
        if (typeof this.#WebSocket !== "function" && this.#sseAllowed()) this.#useSse = true;
        else if (typeof this.#WebSocket !== "function") {
            throw new TypeError(
                "wsbroker: no WebSocket implementation; on Node < 22 pass one, e.g. " +
                    "connect(url, { WebSocket: (await import('ws')).WebSocket })",
            );
        }
        /** Counters, for dashboards. */
        this.stats = { messages: 0, published: 0, acks: 0, errors: 0, connects: 0, reconnects: 0, recovered: 0, gaps: 0, losses: 0 };
        // Start on the next microtask so that listeners added right after
        // connect() see every event, the first attempt's included.
        queueMicrotask(() => this.#open());
    }

    /** "connecting", "open" or "closed". */
    get state() {
        return this.#state;
    }

    /** The broker's last `welcome` (client_id, node_id, limits…), or null before the first. */
    get welcome() {
        return this.#welcome;
    }

    /** The URL the client connects to (without the token). */
    get url() {
        return this.#url.href;
    }

    /** Publishes waiting for the socket to open. */
    get queued() {
        return this.#queue.length;
    }

    /**
     * Subscribes to `pattern`. `callback(msg, subscription)` receives every
     * matching message; without it, iterate the subscription with for await.
     * options.since = {epoch, seq} asks the broker to replay an exact topic,
     * or a pattern inside a stream (the stream's position).
     */
    subscribe(pattern, callback, options = {}) {
        if (typeof callback === "object" && callback !== null) {
            options = callback;
            callback = undefined;
        }
        if (typeof pattern !== "string" || pattern === "") {
            throw new TypeError("wsbroker: subscribe needs a non-empty topic pattern string");
        }
        if (callback !== undefined && typeof callback !== "function") {
            throw new TypeError("wsbroker: the subscribe callback must be a function");
        }
        const sub = new Subscription(this, pattern, callback, options.bufferSize ?? this.#opts.bufferSize);
        if (this.#state === State.CLOSED) {
            sub._end(new WsbrokerError("closed", "the connection is closed"));
            return sub;
        }
        // since / history: a replay of an exact topic for this subscription.
        // On a pattern (last value on wildcards, PROTOCOL.md 3.1a) only
        // history, and only when the pattern is new on this connection: a
        // replay of many topics cannot be skipped per subscription.
        let replay = null;
        const history = Number.isInteger(options.history) && options.history > 0 ? options.history : 0;
        if (isExactTopic(pattern)) {
            if (options.since) replay = { since: { epoch: options.since.epoch, seq: options.since.seq } };
            else if (history > 0) replay = { history };
        } else if (options.since && !this.#patterns.has(pattern)) {
            // A pattern inside a stream (PROTOCOL.md 3.1b): the stream's position.
            replay = { since: { epoch: options.since.epoch, seq: options.since.seq } };
        } else if (history > 0 && !this.#patterns.has(pattern)) {
            replay = { history };
        }
        let entry = this.#patterns.get(pattern);
        if (!entry) {
            entry = { subs: new Set(), inflight: null, active: false, acked: false, replays: [] };
            this.#patterns.set(pattern, entry);
            // A new topic: its replay is the subscribe itself (and a
            // reconnect resumes from `since` until a message moves it).
            if (replay?.since) this.#positions.set(pattern, replay.since);
            else if (replay?.history) entry.history = replay.history;
            // Last value on a wildcard: every reconnect asks for it again
            // (the topics' positions are not one position a since could carry).
            if (replay?.history && !isExactTopic(pattern)) entry.lastValue = replay.history;
            replay = null;
        }
        if (entry.lastValue) sub._trackTopics();
        entry.subs.add(sub);
        if (replay) {
            // A topic this connection already holds: the broker replays for a
            // subscribe with since or history all the same (PROTOCOL.md 3.1);
            // the other subscriptions skip what they have had.
            sub._hold();
            entry.replays.push({ sub, ...replay });
            if (this.#state === State.OPEN) this.#sendReplays(pattern, entry);
        } else if (entry.active) {
            queueMicrotask(() => sub._subscribed({ recovered: undefined, resubscribed: false }));
        } else if (entry.inflight === null && this.#state === State.OPEN) {
            this.#sendSubscribe(pattern, entry);
        }
        return sub;
    }

    /**
     * Publishes `data` (any JSON value; undefined is sent as null) to the exact
     * topic `topic`. Resolves with {seq, topic} on the broker's ack.
     */
    publish(topic, data = null) {
        if (this.#state === State.CLOSED) {
            return Promise.reject(new WsbrokerError("closed", "the connection is closed"));
        }
        if (typeof topic !== "string" || topic === "") {
            return Promise.reject(new TypeError("wsbroker: publish needs a non-empty topic string"));
        }
        let dataText;
        try {
            dataText = JSON.stringify(data);
        } catch (err) {
            return Promise.reject(err);
        }
        if (dataText === undefined) dataText = "null";
        return new Promise((resolve, reject) => {
            const req = { kind: "publish", topic, dataText, resolve, reject };
            if (this.#state === State.OPEN) {
                this.#sendPublish(req);
            } else if (this.#queue.length < this.#opts.maxQueue) {
                this.#queue.push(req);
            } else {
                reject(
                    new WsbrokerError(
                        "queue_full",
                        `offline publish queue is full (maxQueue ${this.#opts.maxQueue}); not published to ${topic}`,
                        { topic },
                    ),
                );
            }
        });
    }

    /**
     * Who is subscribed to the exact topic `topic` (PROTOCOL.md 3.6: the
     * topic's rule must enable presence; the token must allow subscribing).
     * Resolves with {topic, members: [{client, user}]}; rejects with the
     * broker's error ("forbidden", "bad_topic", …) or "disconnected".
     */
    presence(topic) {
        return this.#query("presence", topic);
    }

    /** Counts of presence(topic): resolves with {topic, clients, users}. */
    presenceStats(topic) {
        return this.#query("presence_stats", topic);
    }

    // A request answered by a frame of its own type (presence, presence_stats).
    // Not queued while offline: the answer would be stale by the time it came.
    #query(type, topic) {
        if (this.#state === State.CLOSED) {
            return Promise.reject(new WsbrokerError("closed", "the connection is closed"));
        }
        if (typeof topic !== "string" || topic === "") {
            return Promise.reject(new TypeError(`wsbroker: ${type} needs a non-empty topic string`));
        }
        if (this.#state !== State.OPEN) {
            return Promise.reject(new WsbrokerError("disconnected", "not connected", { topic }));
        }
        return new Promise((resolve, reject) => {
            const id = this.#takeId();
            this.#pending.set(id, { kind: type, topic, resolve, reject });
            this.#send({ type, topic, id });
        });
    }

    /**
     * Request/reply (PROTOCOL.md 3.7): sends `data` to the subscribers of the
     * exact `topic`; a responder answers by publishing to the message's
     * `reply_to`. Resolves with {data, from} of the first reply; rejects with
     * "no_responders" (nobody subscribes to the topic, at once), "timeout"
     * (no reply within opts.timeout ms: default 5000, at most 60000, the
     * broker's clock), "disconnected" (the socket went away first: never
     * resent), or the broker's error ("forbidden", "limit_exceeded", …).
     * Not queued while offline.
     */
    request(topic, data, opts = {}) {
        if (this.#state === State.CLOSED) {
            return Promise.reject(new WsbrokerError("closed", "the connection is closed"));
        }
        if (typeof topic !== "string" || topic === "") {
            return Promise.reject(new TypeError("wsbroker: request needs a non-empty topic string"));
        }
        const timeout = opts.timeout ?? 5000;
        if (!Number.isInteger(timeout) || timeout < 1 || timeout > 60000) {
            return Promise.reject(new TypeError("wsbroker: request timeout must be an integer from 1 to 60000 ms"));
        }
        if (this.#state !== State.OPEN) {
            return Promise.reject(new WsbrokerError("disconnected", "not connected", { topic }));
        }
        return new Promise((resolve, reject) => {
            const id = this.#takeId();
            this.#pending.set(id, { kind: "request", topic, resolve, reject });
            this.#send({ type: "request", topic, data: data === undefined ? null : data, id, timeout_ms: timeout });
        });
    }

    /** Application-level round trip; resolves with the round-trip time in ms. */
    ping() {
        if (this.#state !== State.OPEN) {
            return Promise.reject(new WsbrokerError("disconnected", "not connected"));
        }
        return new Promise((resolve, reject) => {
            const started = now();
            const id = this.#takeId();
            const timer = setTimeout(() => {
                if (this.#pending.delete(id)) reject(new WsbrokerError("timeout", "no pong in time"));
            }, this.#opts.pingTimeout);
            this.#pending.set(id, {
                kind: "ping",
                resolve: () => {
                    clearTimeout(timer);
                    resolve(now() - started);
                },
                reject: (err) => {
                    clearTimeout(timer);
                    reject(err);
                },
            });
            this.#send({ type: "ping", id });
        });
    }

    /**
     * Closes for good: rejects queued and unanswered requests with "closed",
     * ends every subscription, sends a close frame. Resolves once the socket is
     * closed (after at most 2 s). Safe to call more than once.
     */
    close() {
        if (this.#closePromise) return this.#closePromise;
        const ws = this.#ws;
        this.#shutdown(1000, "client close", null);
        this.#closePromise = new Promise((resolve) => {
            if (!ws || ws.readyState === 3 /* CLOSED */) {
                resolve();
                return;
            }
            const timer = setTimeout(resolve, 2000);
            ws.onclose = () => {
                clearTimeout(timer);
                resolve();
            };
            try {
                ws.close(1000, "client close");
            } catch {
                clearTimeout(timer);
                resolve();
            }
        });
        return this.#closePromise;
    }

    /** "websocket", or "sse" once the SSE fallback took over. */
    get transport() {
        return this.#useSse ? "sse" : "websocket";
    }

    // --- internals ---

    #sseAllowed() {
        return Array.isArray(this.#opts.transports) && this.#opts.transports.includes("sse");
    }

    // A WebSocket attempt that failed before its welcome: after sseAfter of
    // them the SSE fallback takes over for good.
    #noteWsFailure() {
        if (this.#useSse || !this.#sseAllowed()) return;
        this.#wsFailures++;
        if (this.#wsFailures >= this.#opts.sseAfter) {
            this.#useSse = true;
            this.#attempt = 0;
        }
    }

    #newSseSocket(url) {
        const ES = this.#opts.EventSource || globalThis.EventSource;
        if (typeof ES !== "function") throw new TypeError("no EventSource implementation for the SSE fallback");
        return new SseSocket(url, ES, this.#opts.sseUrl);
    }

    #setState(next) {
        if (this.#state === next) return;
        const prev = this.#state;
        this.#state = next;
        this._emit("state", next, prev);
    }

    #takeId() {
        const id = this.#nextId;
        this.#nextId = id >= MAX_ID ? 1 : id + 1;
        return id;
    }

    async #open() {
        if (this.#state === State.CLOSED) return;
        this.#setState(State.CONNECTING);
        let url = this.#url;
        const source = this.#tokenSource();
        let value = source ? undefined : this.#opts.token;
        if (source) {
            try {
                value = await source();
            } catch (err) {
                this._emit("error", new WsbrokerError("token", `token callback failed: ${err?.message ?? err}`));
                this.#scheduleReconnect(1006, "token callback failed");
                return;
            }
            if (this.#state === State.CLOSED) return;
        }
        if (value !== undefined && value !== null) {
            value = String(value);
            if (value === this.#refusedToken) {
                // Never the credentials the broker has just refused.
                const err = new WsbrokerError(
                    "token",
                    "the token function returned the token the broker refused; not reconnecting",
                );
                this.#shutdown(1000, "token refused", err);
                return;
            }
            this.#token = value;
            this.#tokenAt = Date.now();
            url = new URL(url.href);
            url.searchParams.set("token", value);
        }
        let ws;
        try {
            ws = this.#useSse ? this.#newSseSocket(url) : new this.#WebSocket(url.href);
        } catch (err) {
            this.#noteWsFailure();
            this._emit("error", new WsbrokerError("connect", `cannot open ${this.#url.href}: ${err?.message ?? err}`));
            this.#scheduleReconnect(1006, "connect failed");
            return;
        }
        this.#ws = ws;
        this.#welcomed = false;
        this.#lastRx = now();
        ws.onopen = () => {};
        ws.onerror = () => {}; // a close event always follows
        ws.onmessage = (ev) => {
            if (ws === this.#ws) this.#onFrame(ev.data);
        };
        ws.onclose = (ev) => {
            if (ws === this.#ws) this.#onSocketGone(ev.code, ev.reason || "");
        };
        this.#connectTimer = setTimeout(() => {
            if (ws === this.#ws && !this.#welcomed) this.#drop(ws, "connect timeout");
        }, this.#opts.connectTimeout);
    }

    #onFrame(raw) {
        this.#lastRx = now();
        if (typeof raw !== "string") return; // the broker never sends binary messages
        let msg;
        try {
            msg = JSON.parse(raw);
        } catch {
            this._emit("error", new WsbrokerError("bad_json", "the broker sent a message that is not JSON"));
            return;
        }
        if (msg === null || typeof msg !== "object") return;
        switch (msg.type) {
            case "message":
                this.#onMessage(msg);
                break;
            case "ack":
            case "pong":
            case "presence":
            case "presence_stats":
            case "reply":
                this.#onReply(msg, null);
                break;
            case "error": {
                this.stats.errors++;
                const err = new WsbrokerError(String(msg.code), String(msg.message ?? msg.code));
                if (typeof msg.id === "number" && this.#pending.has(msg.id)) this.#onReply(msg, err);
                else this._emit("error", err);
                break;
            }
            case "welcome":
                this.#onWelcome(msg);
                break;
            case "gap":
                this.#onGap(msg);
                break;
            case "unsubscribed":
                this.#onUnsubscribed(msg);
                break;
            case "join":
            case "leave":
                this.#onMembership(msg);
                break;
            default:
                break; // unknown types are ignored (section 12)
        }
    }

    #onWelcome(msg) {
        clearTimeout(this.#connectTimer);
        this.#connectTimer = null;
        if (msg.protocol !== PROTOCOL_VERSION) {
            const err = new WsbrokerError(
                "protocol",
                `the broker speaks protocol ${msg.protocol}; this client speaks ${PROTOCOL_VERSION}`,
            );
            const ws = this.#ws;
            this.#shutdown(1002, err.message, err);
            try {
                ws.close(1000, "unsupported protocol");
            } catch {
                /* already closing */
            }
            return;
        }
        this.#welcomed = true;
        this.#welcome = msg;
        if (this.stats.connects > 0) this.stats.reconnects++;
        this.stats.connects++;
        this.#attempt = 0;
        this.#startKeepalive();
        this.#setState(State.OPEN);
        this.#refusedToken = null;
        this.#scheduleRefresh();
        for (const [pattern, entry] of this.#patterns) {
            this.#sendSubscribe(pattern, entry);
            this.#sendReplays(pattern, entry);
        }
        const queue = this.#queue.splice(0);
        for (const req of queue) this.#sendPublish(req);
        this._emit("open", msg);
    }

    #onMessage(msg) {
        this.stats.messages++;
        this._emit("message", msg);
        const topic = msg.topic;
        if (typeof topic !== "string") return;
        if (typeof msg.epoch === "string" && typeof msg.seq === "number" && this.#patterns.has(topic)) {
            const pos = this.#positions.get(topic);
            if (!pos || pos.epoch !== msg.epoch || pos.seq < msg.seq) {
                this.#positions.set(topic, { epoch: msg.epoch, seq: msg.seq });
            }
        }
        for (const [pattern, entry] of this.#patterns) {
            if (pattern === topic || matches(pattern, topic)) {
                if (entry.stream && pattern !== topic) this.#noteStreamMessage(pattern, msg);
                for (const sub of entry.subs) sub._deliver(msg);
            }
        }
    }

    // A pattern inside a stream (its ack named the stream): the stream's
    // one seq moves the pattern's position, so a reconnect recovers every
    // missed message of every matching topic with one `since`. Only
    // messages of the stream's epoch count (a matching topic that another
    // rule takes has its own seq); a new epoch is learnt from the ack.
    #noteStreamMessage(pattern, msg) {
        if (typeof msg.epoch !== "string" || !Number.isInteger(msg.seq)) return;
        const pos = this.#positions.get(pattern);
        if (pos && pos.epoch === msg.epoch && pos.seq < msg.seq) {
            this.#positions.set(pattern, { epoch: msg.epoch, seq: msg.seq });
        }
    }

    // The broker dropped messages of `msg.topic` for us (we read too slowly)
    // and suspended the topic until we subscribe to it again with since.
    // Inside a stream (PROTOCOL.md 4.6: `stream` is set) `topic` is our
    // subscription (a pattern or a topic), resumed the same way. A gap with
    // `to` follows the ack of a since the broker could not recover: the
    // stream's messages after seq up to `to` are lost (a "loss" event), the
    // rest of the log follows at once: nothing to resubscribe.
    #onGap(msg) {
        const topic = msg.topic;
        if (typeof topic !== "string") return;
        const info = { topic, epoch: msg.epoch, seq: msg.seq };
        const stream = typeof msg.stream === "string" ? msg.stream : undefined;
        const lost = Number.isInteger(msg.to);
        if (stream !== undefined) info.stream = stream;
        if (lost) info.to = msg.to;
        this.stats.gaps++;
        const entry = this.#patterns.get(topic);
        // A stream's gap is about one subscription; a topic's, about every
        // subscription that matches the topic.
        const targets = [];
        for (const [pattern, e] of this.#patterns) {
            if (pattern === topic || (stream === undefined && matches(pattern, topic))) targets.push(e);
        }
        this._emit("gap", info);
        for (const e of targets) for (const sub of e.subs) sub._emit("gap", info);
        if (lost) {
            this.stats.losses++;
            this._emit("loss", info);
            for (const e of targets) for (const sub of e.subs) sub._emit("loss", info);
        }
        if (!entry || typeof msg.epoch !== "string" || !Number.isInteger(msg.seq)) return;
        if (lost) {
            // The replay that follows moves the position on from `to`.
            this.#positions.set(topic, { epoch: msg.epoch, seq: msg.to });
        } else if (this.#state === State.OPEN) {
            // Recover from the last message we hold.
            this.#positions.set(topic, { epoch: msg.epoch, seq: msg.seq });
            this.#sendSubscribe(topic, entry);
        }
    }

    // A member subscribed to (join) or left (leave) an exact topic whose rule
    // has join_leave: reported on the connection and on every subscription
    // whose pattern matches the topic.
    #onMembership(msg) {
        const topic = msg.topic;
        const m = msg.member;
        if (typeof topic !== "string" || m === null || typeof m !== "object") return;
        const info = { topic, member: { client: m.client, user: m.user ?? null } };
        const join = msg.type === "join";
        if (join) this._emit("join", info);
        else this._emit("leave", info);
        for (const [pattern, entry] of this.#patterns) {
            if (pattern === topic || matches(pattern, topic)) {
                for (const sub of entry.subs) {
                    if (join) sub._emit("join", info);
                    else sub._emit("leave", info);
                }
            }
        }
    }

    // The broker removed a subscription by itself (PROTOCOL.md 4.7: new
    // credentials do not allow it). Forget the pattern, so a reconnect does
    // not subscribe again, and end its subscriptions with the reason.
    #onUnsubscribed(msg) {
        const topic = msg.topic;
        if (typeof topic !== "string") return;
        const code = String(msg.code ?? "forbidden");
        const info = { topic, code, message: String(msg.message ?? code) };
        const entry = this.#patterns.get(topic);
        this.#patterns.delete(topic);
        this.#positions.delete(topic);
        this._emit("unsubscribed", info);
        if (!entry) return;
        const err = new WsbrokerError(code, info.message);
        err.topic = topic;
        for (const sub of entry.subs) {
            sub._emit("unsubscribed", info);
            sub._end(err);
        }
    }

    #onReply(msg, err) {
        const req = this.#pending.get(msg.id);
        if (!req) return;
        this.#pending.delete(msg.id);
        switch (req.kind) {
            case "publish":
                if (err) {
                    err.topic = req.topic;
                    req.reject(err);
                } else {
                    this.stats.acks++;
                    req.resolve({ seq: msg.seq, topic: req.topic });
                }
                break;
            case "subscribe":
                this.#onSubscribeReply(req, msg, err);
                break;
            case "presence":
            case "presence_stats":
                if (err) {
                    err.topic = req.topic;
                    req.reject(err);
                } else if (req.kind !== msg.type) {
                    req.reject(new WsbrokerError("protocol", `the broker answered a ${req.kind} request with ${msg.type}`));
                } else if (req.kind === "presence") {
                    const members = Array.isArray(msg.members) ? msg.members : [];
                    req.resolve({ topic: req.topic, members: members.map((m) => ({ client: m.client, user: m.user ?? null })) });
                } else {
                    req.resolve({ topic: req.topic, clients: msg.clients, users: msg.users });
                }
                break;
            case "request":
                if (err) {
                    err.topic = req.topic;
                    req.reject(err);
                } else if (msg.type !== "reply") {
                    req.reject(new WsbrokerError("protocol", `the broker answered a request with ${msg.type}`));
                } else {
                    req.resolve({ data: msg.data, from: msg.from ?? null });
                }
                break;
            case "unsubscribe":
                // The broker holds no such subscription (never had, or refused
                // the subscribe before it): done all the same.
                if (err && !UNSUBSCRIBE_DONE.has(err.code)) req.reject(err);
                else req.resolve();
                break;
            default:
                if (err) req.reject(err);
                else req.resolve(msg);
        }
    }

    #onSubscribeReply(req, msg, err) {
        if (req.forSub) {
            this.#onReplayReply(req, msg, err);
            return;
        }
        const entry = this.#patterns.get(req.pattern);
        if (!entry || entry.inflight !== msg.id) return; // unsubscribed meanwhile
        entry.inflight = null;
        if (err) {
            if (err.code === "bad_since" && req.since) {
                // A broker that refuses our position: subscribe without recovery.
                this.#positions.delete(req.pattern);
                this.#sendSubscribe(req.pattern, entry);
                return;
            }
            err.topic = req.pattern;
            this.#patterns.delete(req.pattern);
            this.#positions.delete(req.pattern);
            for (const sub of entry.subs) sub._end(err);
            this._emit("error", err);
            return;
        }
        const info = { recovered: msg.recovered, resubscribed: entry.acked };
        if (typeof msg.stream === "string") entry.stream = msg.stream;
        this.#notePosition(req.pattern, msg);
        entry.active = true;
        entry.acked = true;
        entry.history = undefined; // asked once; a reconnect resumes with since
        const subs = [...entry.subs].filter((sub) => !sub._held);
        for (const sub of subs) sub._subscribed(info);
        this.#reportRecovery(req.pattern, msg, subs);
    }

    // A topic with history: the ack says where the topic stands. After a
    // recovery the replayed messages move the position themselves (if the
    // socket drops mid-replay we must not claim we have them all), and a
    // position only moves forward within an epoch ("history" replays older
    // messages after the ack).
    #notePosition(pattern, msg) {
        if (typeof msg.epoch === "string" && Number.isInteger(msg.seq) && msg.recovered !== true) {
            const pos = this.#positions.get(pattern);
            if (!pos || pos.epoch !== msg.epoch || pos.seq < msg.seq) {
                this.#positions.set(pattern, { epoch: msg.epoch, seq: msg.seq });
            }
        }
    }

    #reportRecovery(pattern, msg, subs) {
        if (typeof msg.recovered !== "boolean") return;
        const ev = { topic: pattern, recovered: msg.recovered, epoch: msg.epoch, seq: msg.seq };
        if (typeof msg.stream === "string") ev.stream = msg.stream;
        if (msg.recovered) this.stats.recovered++;
        this._emit("recovered", ev);
        for (const sub of subs) sub._emit("recovered", ev);
    }

    // The ack of a since / history subscribe for one subscription of a topic
    // the connection already held.
    #onReplayReply(req, msg, err) {
        const sub = req.forSub;
        const entry = this.#patterns.get(req.pattern);
        if (!entry || !entry.subs.has(sub)) return; // unsubscribed meanwhile
        if (err) {
            err.topic = req.pattern;
            sub._end(err);
            void this._unsubscribe(sub); // the others keep the topic
            this._emit("error", err);
            return;
        }
        this.#notePosition(req.pattern, msg);
        sub._subscribed({ recovered: msg.recovered, resubscribed: false });
        this.#reportRecovery(req.pattern, msg, [sub]);
    }

    #sendReplays(pattern, entry) {
        for (const replay of entry.replays.splice(0)) {
            if (replay.sub.closed) continue;
            const id = this.#takeId();
            const req = { type: "subscribe", topic: pattern, id };
            if (replay.since) req.since = replay.since;
            else req.history = replay.history;
            this.#pending.set(id, { kind: "subscribe", pattern, since: !!replay.since, forSub: replay.sub, replay });
            this.#send(req);
        }
    }

    #sendSubscribe(pattern, entry) {
        const id = this.#takeId();
        const req = { type: "subscribe", topic: pattern, id };
        const pos = this.#positions.get(pattern);
        if (pos && typeof pos.epoch === "string" && pos.epoch !== "" && Number.isInteger(pos.seq)) {
            req.since = { epoch: pos.epoch, seq: pos.seq };
        } else if (entry.history) {
            req.history = entry.history;
        } else if (entry.lastValue && entry.stream === undefined) {
            req.history = entry.lastValue;
        }
        entry.inflight = id;
        this.#pending.set(id, { kind: "subscribe", pattern, since: req.since !== undefined });
        this.#send(req);
    }

    /** Called by Subscription.unsubscribe(). */
    _unsubscribe(sub) {
        const entry = this.#patterns.get(sub.topic);
        if (!entry || !entry.subs.delete(sub)) return Promise.resolve();
        if (entry.subs.size > 0) return Promise.resolve();
        this.#patterns.delete(sub.topic);
        this.#positions.delete(sub.topic);
        // With no socket, or before anything was sent on this socket, the broker holds nothing.
        if (this.#state !== State.OPEN || (!entry.active && entry.inflight === null)) {
            return Promise.resolve();
        }
        return new Promise((resolve, reject) => {
            const id = this.#takeId();
            this.#pending.set(id, { kind: "unsubscribe", resolve, reject });
            this.#send({ type: "unsubscribe", topic: sub.topic, id });
        });
    }

    #sendPublish(req) {
        const id = this.#takeId();
        const text = `{"type":"publish","topic":${JSON.stringify(req.topic)},"data":${req.dataText},"id":${id}}`;
        const limit = this.#welcome?.limits?.max_message_size;
        if (typeof limit === "number" && limit > 0 && text.length * 3 > limit && utf8Length(text) > limit) {
            req.reject(
                new WsbrokerError(
                    "too_large",
                    `publish to ${req.topic} is ${utf8Length(text)} bytes; the broker accepts at most ${limit}`,
                    { topic: req.topic },
                ),
            );
            return;
        }
        this.#pending.set(id, req);
        this.stats.published++;
        this.#sendText(text);
    }

    #send(obj) {
        this.#sendText(JSON.stringify(obj));
    }

    #sendText(text) {
        try {
            this.#ws.send(text);
        } catch (err) {
            // The socket is going away; its close event rejects what is pending.
            this._emit("error", new WsbrokerError("disconnected", `send failed: ${err?.message ?? err}`));
        }
    }

    #startKeepalive() {
        this.#stopKeepalive();
        const interval = this.#opts.pingInterval;
        if (!(interval > 0)) return;
        const ws = this.#ws;
        this.#pingTimer = setInterval(() => {
            if (ws !== this.#ws || this.#deadTimer) return;
            if (now() - this.#lastRx < interval) return;
            const sentAt = now();
            this.#send({ type: "ping" });
            this.#deadTimer = setTimeout(() => {
                this.#deadTimer = null;
                if (ws === this.#ws && this.#lastRx < sentAt) this.#drop(ws, "keepalive timeout");
            }, this.#opts.pingTimeout);
        }, Math.max(10, Math.floor(interval / 2)));
    }

    // getToken, or the older `token` given as a function; null for a fixed token.
    #tokenSource() {
        if (typeof this.#opts.getToken === "function") return this.#opts.getToken;
        return typeof this.#opts.token === "function" ? this.#opts.token : null;
    }

    // Asks for a fresh token when TOKEN_REFRESH_AT of the current one's
    // lifetime has passed (from `iat`, else from when we got it), and sends it
    // in an `auth` request: the session then outlives the old token's `exp`.
    #scheduleRefresh(retry = false) {
        this.#stopRefresh();
        if (!this.#tokenSource() || this.#token === null) return;
        const { exp, iat } = tokenTimes(this.#token);
        if (exp === undefined) return;
        const nowMs = Date.now();
        const startMs = iat !== undefined ? iat * 1000 : this.#tokenAt;
        const lifetime = Math.max(0, exp * 1000 - startMs);
        let at = startMs + lifetime * TOKEN_REFRESH_AT;
        // The same token again (a cache in getToken): ask again a little later.
        // Never sooner than a second from now: past exp, min() alone gave a
        // zero delay and a getToken loop as fast as the event loop.
        if (retry) at = Math.max(nowMs + 1000, Math.min(exp * 1000, nowMs + Math.max(1000, lifetime / 10)));
        const delay = Math.min(0x7fffffff, Math.max(0, at - nowMs));
        this.#refreshTimer = setTimeout(() => this.#refreshToken(), delay);
    }

    #stopRefresh() {
        clearTimeout(this.#refreshTimer);
        this.#refreshTimer = null;
    }

    async #refreshToken() {
        this.#refreshTimer = null;
        const ws = this.#ws;
        const source = this.#tokenSource();
        if (!source || this.#state !== State.OPEN) return;
        let value;
        try {
            value = String(await source());
        } catch (err) {
            // The session ends at exp (4002); the reconnect asks again.
            this._emit("error", new WsbrokerError("token", `token callback failed: ${err?.message ?? err}`));
            return;
        }
        if (ws !== this.#ws || this.#state !== State.OPEN) return;
        if (value === this.#token) {
            this.#scheduleRefresh(true);
            return;
        }
        const id = this.#takeId();
        this.#pending.set(id, {
            kind: "auth",
            resolve: () => {
                this.#token = value;
                this.#tokenAt = Date.now();
                this.#scheduleRefresh();
            },
            reject: (err) => {
                if (err.code !== "disconnected" && err.code !== "closed") this._emit("error", err);
            },
        });
        this.#send({ type: "auth", token: value, id });
    }

    #stopKeepalive() {
        clearInterval(this.#pingTimer);
        clearTimeout(this.#deadTimer);
        this.#pingTimer = null;
        this.#deadTimer = null;
    }

    // Gives up on a socket that does not answer: forget it at once (its close
    // event is ignored) and reconnect, without waiting for a closing handshake.
    #drop(ws, reason) {
        detach(ws);
        try {
            if (typeof ws.terminate === "function") ws.terminate(); // `ws` package
            else ws.close(4000, reason);
        } catch {
            /* already closed */
        }
        if (ws === this.#ws) this.#onSocketGone(1006, reason);
    }

    #onSocketGone(code, reason) {
        if (!this.#welcomed) this.#noteWsFailure();
        const ws = this.#ws;
        this.#ws = null;
        if (ws) detach(ws);
        clearTimeout(this.#connectTimer);
        this.#connectTimer = null;
        this.#stopKeepalive();
        this.#stopRefresh();
        this.#failPending(new WsbrokerError("disconnected", `connection lost (${code} ${reason})`.trim()));
        if (this.#state === State.CLOSED) return;
        if (code >= CREDENTIALS_CLOSE_MIN && code <= CREDENTIALS_CLOSE_MAX) {
            // "Do not reconnect with the same credentials": only with a fresh
            // token from getToken, after a refused or expired one.
            const err = refusalError(code, reason);
            if ((code === 4001 || code === 4002) && this.#tokenSource() && this.#opts.reconnect) {
                this.#refusedToken = this.#token;
                this._emit("error", err);
                this.#scheduleReconnect(code, reason);
            } else {
                this.#shutdown(code, reason, err);
            }
            return;
        }
        if (FATAL_CLOSE_CODES.has(code)) {
            const err = new WsbrokerError(
                "protocol",
                `the broker closed the connection with ${code} (${reason}); not reconnecting`,
                { closeCode: code },
            );
            this.#shutdown(code, reason, err);
            return;
        }
        this.#scheduleReconnect(code, reason);
    }

    #scheduleReconnect(code, reason) {
        const rc = this.#opts.reconnect;
        if (!rc || this.#attempt >= rc.maxAttempts) {
            this.#shutdown(code, reason, null);
            return;
        }
        const base = Math.min(rc.maxDelay, rc.minDelay * Math.pow(rc.factor, this.#attempt));
        const delay = Math.round(base * (1 - rc.jitter * Math.random()));
        this.#attempt++;
        this.#setState(State.CONNECTING);
        this._emit("disconnect", { code, reason, reconnectIn: delay, attempt: this.#attempt });
        this.#reconnectTimer = setTimeout(() => {
            this.#reconnectTimer = null;
            if (this.#state !== State.CLOSED) this.#open();
        }, delay);
    }

    // Requests sent on a socket that is gone: publishes and pings fail (at most
    // once: never resent), unsubscribes are done (the broker dropped everything
    // with the socket), subscribes are sent again after the next welcome.
    #failPending(err) {
        const pending = [...this.#pending.values()];
        this.#pending.clear();
        for (const req of pending) {
            if (req.kind === "unsubscribe") req.resolve();
            else if (req.kind !== "subscribe") req.reject(err);
            else if (req.forSub && !req.forSub.closed) {
                // Asked again after the next welcome.
                this.#patterns.get(req.pattern)?.replays.push(req.replay);
            }
        }
        for (const entry of this.#patterns.values()) {
            entry.inflight = null;
            entry.active = false;
            for (const sub of entry.subs) sub._inactive();
        }
    }

    #shutdown(code, reason, error) {
        if (this.#state === State.CLOSED) return;
        clearTimeout(this.#reconnectTimer);
        clearTimeout(this.#connectTimer);
        this.#reconnectTimer = this.#connectTimer = null;
        this.#stopKeepalive();
        this.#stopRefresh();
        if (this.#ws) detach(this.#ws);
        this.#ws = null;
        const closed = new WsbrokerError("closed", "the connection is closed");
        this.#failPending(closed);
        for (const req of this.#queue.splice(0)) req.reject(closed);
        const subs = [];
        for (const entry of this.#patterns.values()) subs.push(...entry.subs);
        this.#patterns.clear();
        for (const sub of subs) sub._end(error);
        this.#setState(State.CLOSED);
        if (error) this._emit("error", error);
        this._emit("close", { code, reason, error });
    }
}

// The SSE fallback as a WebSocket look-alike, so that the Connection keeps
// all its logic (subscriptions, positions, queue, reconnects): it answers
// the requests the Connection sends with the frames the broker would send.
// Receiving is one EventSource on GET /sse with every subscribed pattern,
// reopened when the set changes (Last-Event-ID / since resume a single
// topic); publishing is fetch POST /api/publish with the token as Bearer.
// presence, presence_stats and request have no SSE form: they fail with
// "not_available" (use the HTTP API from a backend).
class SseSocket {
    onopen = null;
    onmessage = null;
    onerror = null;
    onclose = null;
    readyState = 1;
    #ES;
    #sseUrl;
    #publishUrl;
    #token;
    #topics = new Map(); // pattern -> ids of subscribes waiting for their `subscribed` event
    #since = null; // "<epoch>:<seq>" to resume a one-topic stream from
    #unsubscribing = []; // ids of unsubscribes acked once the reopened stream is live
    #es = null;
    #reopening = false;
    #closed = false;

    constructor(wsUrl, ES, sseUrl) {
        this.#ES = ES;
        const base = new URL(wsUrl.href);
        base.protocol = base.protocol === "wss:" ? "https:" : "http:";
        this.#token = base.searchParams.get("token");
        base.search = "";
        const dir = base.pathname.replace(/[^/]*$/, "");
        this.#sseUrl = sseUrl ? new URL(sseUrl, base) : new URL(dir + "sse", base);
        this.#publishUrl = new URL(dir + "api/publish", base);
        queueMicrotask(() => {
            if (this.#closed) return;
            this.onopen?.();
            this.#frame({ type: "welcome", protocol: 1, client_id: null, node_id: null, transport: "sse", limits: {} });
        });
    }

    send(text) {
        if (this.#closed) throw new Error("the event stream is closed");
        const req = JSON.parse(text);
        switch (req.type) {
            case "subscribe": {
                const t = this.#topics.get(req.topic) ?? [];
                t.push(req.id);
                this.#topics.set(req.topic, t);
                if (req.since) this.#since = `${req.since.epoch}:${req.since.seq}`;
                this.#reopen();
                break;
            }
            case "unsubscribe":
                this.#topics.delete(req.topic);
                this.#reopen();
                // With patterns left, the ack waits for the reopened stream to
                // be live: after `await unsubscribe()` the others deliver again.
                if (this.#topics.size > 0) this.#unsubscribing.push(req.id);
                else this.#reply({ type: "ack", id: req.id });
                break;
            case "publish":
                this.#publish(req);
                break;
            case "ping":
                this.#reply({ type: "pong", id: req.id });
                break;
            case "auth":
                // The broker ends a stream at its token's exp: reopen with the
                // fresh one now (a one-topic stream resumes from its last id).
                this.#token = req.token;
                if (this.#es) this.#reopen();
                this.#reply({ type: "ack", id: req.id });
                break;
            default:
                this.#reply({ type: "error", id: req.id, code: "not_available", message: `${req.type} is not available over SSE` });
        }
    }

    close(code = 1000, reason = "") {
        if (this.#closed) return;
        this.#closed = true;
        this.readyState = 3;
        this.#es?.close();
        queueMicrotask(() => this.onclose?.({ code, reason }));
    }

    #frame(obj) {
        if (!this.#closed) this.onmessage?.({ data: JSON.stringify(obj) });
    }

    #reply(obj) {
        queueMicrotask(() => this.#frame(obj));
    }

    #gone(code, reason) {
        if (this.#closed) return;
        for (const id of this.#unsubscribing.splice(0)) this.#frame({ type: "ack", id });
        this.#closed = true;
        this.readyState = 3;
        this.#es?.close();
        this.onclose?.({ code, reason });
    }

    // Several subscribes in one turn (after the welcome) open one stream.
    #reopen() {
        if (this.#reopening) return;
        this.#reopening = true;
        queueMicrotask(() => {
            this.#reopening = false;
            if (this.#closed) return;
            const last = this.#es?.lastEventId;
            this.#es?.close();
            this.#es = null;
            if (this.#topics.size === 0) return;
            const url = new URL(this.#sseUrl.href);
            for (const topic of this.#topics.keys()) url.searchParams.append("topic", topic);
            if (this.#token) url.searchParams.set("token", this.#token);
            const since = this.#topics.size === 1 ? (last && last.includes(":") ? last : this.#since) : null;
            if (since && !since.startsWith(":")) url.searchParams.set("since", since);
            this.#since = null;
            const es = new this.#ES(url.href);
            this.#es = es;
            es.addEventListener("subscribed", (ev) => {
                if (es !== this.#es) return;
                const info = JSON.parse(ev.data);
                for (const id of this.#unsubscribing.splice(0)) this.#frame({ type: "ack", id });
                const ids = this.#topics.get(info.topic);
                if (!ids) return;
                const { topic, ...position } = info;
                for (const id of ids.splice(0)) this.#frame({ type: "ack", id, ...position });
            });
            es.addEventListener("message", (ev) => {
                if (es === this.#es) this.onmessage?.({ data: ev.data });
            });
            es.addEventListener("close", (ev) => {
                if (es !== this.#es) return;
                let info = {};
                try {
                    info = JSON.parse(ev.data);
                } catch {
                    /* a close without details */
                }
                this.#gone(info.code ?? 1006, info.reason ?? "event stream closed");
            });
            es.onerror = () => {
                // CONNECTING: EventSource retries by itself (with Last-Event-ID);
                // CLOSED: refused (4xx) or given up.
                if (es === this.#es && es.readyState === 2) this.#gone(1006, "event stream failed");
            };
        });
    }

    async #publish(req) {
        const headers = { "Content-Type": "application/json" };
        if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
        let res;
        let body = null;
        try {
            res = await fetch(this.#publishUrl.href, {
                method: "POST",
                headers,
                body: JSON.stringify({ topic: req.topic, data: req.data ?? null }),
            });
            body = await res.json().catch(() => null);
        } catch (err) {
            this.#frame({ type: "error", id: req.id, code: "disconnected", message: `publish failed: ${err?.message ?? err}` });
            return;
        }
        if (res.ok && body && typeof body.seq === "number") {
            this.#frame({ type: "ack", id: req.id, seq: body.seq });
        } else {
            const e = body?.error ?? {};
            this.#frame({ type: "error", id: req.id, code: e.code ?? `http_${res.status}`, message: e.message ?? `HTTP ${res.status}` });
        }
    }
}

// Stops reacting to a socket's events. Handlers become no-ops rather than null:
// the `ws` package throws on an 'error' event that has no listener.
function detach(ws) {
    const noop = () => {};
    ws.onopen = noop;
    ws.onmessage = noop;
    ws.onerror = noop;
    ws.onclose = noop;
}

function now() {
    return globalThis.performance?.now ? globalThis.performance.now() : Date.now();
}

/**
 * Connects to a wsbroker WebSocket endpoint and keeps connected.
 * `url`: ws://host:port/ws (http(s):// is mapped to ws(s)://; in a browser a
 * path such as "/ws" is relative to the page). Options: see wsbroker.d.ts.
 */
export function connect(url, options) {
    return new Connection(url, options);
}

export default connect;
