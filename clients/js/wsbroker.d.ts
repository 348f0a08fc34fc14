// Type definitions for wsbroker-client (clients/js/wsbroker.js).
// Wire protocol v1: protocol/PROTOCOL.md.

/** Any JSON value: what `data` can be. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type ConnectionState = "connecting" | "open" | "closed";

export declare const VERSION: string;
export declare const PROTOCOL_VERSION: 1;
export declare const State: Readonly<{ CONNECTING: "connecting"; OPEN: "open"; CLOSED: "closed" }>;

/** Error codes sent by the broker (PROTOCOL.md section 7); the list may grow. */
export type BrokerErrorCode =
    | "bad_json"
    | "bad_type"
    | "missing_field"
    | "bad_field"
    | "bad_topic"
    | "bad_since"
    | "forbidden"
    | "too_large"
    | "limit_exceeded"
    | "not_subscribed"
    | "rate_limited"
    | "unauthorized"
    | "unavailable"
    | "not_available" // presence on a topic whose rule does not enable it
    | "internal"
    | "no_responders" // request(): nobody subscribes to the topic
    | "timeout"; // request(): no reply within its timeout

/** Error codes raised by the client itself. */
export type ClientErrorCode =
    | "closed" // the connection (or subscription) was closed
    | "disconnected" // the socket dropped before the reply; the request may or may not have taken effect
    | "queue_full" // the offline publish queue holds maxQueue publishes already
    | "too_large" // larger than the broker's announced max_message_size (not sent)
    | "protocol" // unsupported protocol version, or a close code after which reconnecting is pointless
    | "timeout" // no pong in pingTimeout
    | "connect" // the WebSocket could not be created
    | "token" // getToken (or the token function) threw, or returned the token just refused
    | "invalid_token" // the broker closed with 4001: the token is malformed, forged or not valid yet
    | "token_expired" // the broker closed with 4002: the token has expired
    | "origin_not_allowed" // the broker closed with 4003: this page's origin may not connect
    | "refused"; // the broker closed with another code in 4000-4099 (do not reconnect with the same credentials)

export declare class WsbrokerError extends Error {
    name: "WsbrokerError";
    /** Branch on this, never on `message`. Unknown codes are failures too. */
    code: BrokerErrorCode | ClientErrorCode | (string & {});
    /** The topic or pattern of the failed request, when there was one. */
    topic?: string;
    /** After a close ("protocol", "invalid_token", "token_expired", "origin_not_allowed", "refused"): the WebSocket close code. */
    closeCode?: number;
    /** With closeCode for codes 4000-4099: the close frame's reason ("invalid token", …). */
    closeReason?: string;
    constructor(code: string, message: string, extra?: object);
}

/** A `message` frame as the broker sends it. Shared by every matching subscription: do not mutate. */
export interface Message<T = JsonValue> {
    type: "message";
    /** The exact topic it was published to. */
    topic: string;
    /** Per-topic sequence number. */
    seq: number;
    /** Present when the topic keeps history (used to resubscribe with `since`). */
    epoch?: string;
    /**
     * Who published it, stamped by the broker on topics whose rule has
     * `publisher: true` (absent elsewhere). A `from` inside `data` is whatever
     * the publisher wrote: only this one can be trusted.
     */
    from?: Member;
    /**
     * Present on a request (request/reply): publish the answer to this topic
     * and the requester gets it as the resolution of its request().
     */
    reply_to?: string;
    data: T;
}

/** The resolution of request(): the first reply. */
export interface Reply<T = JsonValue> {
    data: T;
    /** The responder, stamped by the broker (client null and the API key's name for HTTP/RESP). */
    from: { client: string | null; user: string | null } | null;
}

/** A connection as presence, join/leave and `from` name it. */
export interface Member {
    /** Unique per connection (the welcome's client_id of that connection). */
    client: string;
    /** The JWT `sub` of its token (an API key's name for HTTP/RESP publishes), or null. */
    user: string | null;
}

/** The answer to presence(topic): the connections subscribed to that exact topic (PROTOCOL.md 3.6). */
export interface PresenceInfo {
    topic: string;
    members: Member[];
}

/** The answer to presenceStats(topic). */
export interface PresenceStats {
    topic: string;
    /** Connections subscribed to the topic. */
    clients: number;
    /** Distinct users among them (connections without a user are not counted). */
    users: number;
}

/** A `join` or `leave` event: `member` subscribed to, or left, `topic`. */
export interface MembershipInfo {
    topic: string;
    member: Member;
}

export interface Welcome {
    type: "welcome";
    protocol: number;
    /** This connection's id, as `client` in presence, join/leave and `from`. */
    client_id: string;
    /** The token's `sub`, or null without one. */
    user?: string | null;
    node_id: string;
    version: string;
    limits: { max_message_size: number; max_subscriptions: number; ping_interval_ms: number };
    [key: string]: unknown;
}

export interface PublishAck {
    /** The sequence number the broker assigned. */
    seq: number;
    topic: string;
}

export interface SubscribedInfo {
    /** true/false when the subscribe carried `since` (history replay or not); undefined otherwise. */
    recovered: boolean | undefined;
    /** true when this ack re-established the subscription after a reconnect. */
    resubscribed: boolean;
}

export interface Position {
    epoch: string;
    seq: number;
}

export interface ReconnectOptions {
    /** First delay in ms (default 500). */
    minDelay?: number;
    /** Largest delay in ms (default 30000). */
    maxDelay?: number;
    /** Growth per failed attempt (default 2). */
    factor?: number;
    /** Fraction of the delay removed at random, 0..1 (default 0.5: each delay is in [d/2, d]). */
    jitter?: number;
    /** Attempts in a row before giving up and closing (default Infinity). */
    maxAttempts?: number;
}

/** A WebSocket constructor: the browser's, Node 22's global, or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: { data: any }) => void) | null;
    onerror: ((ev: any) => void) | null;
    onclose: ((ev: { code: number; reason: string }) => void) | null;
};

export interface ConnectOptions {
    /**
     * A fixed token, sent as the `token` query parameter of the upgrade
     * request. (A function here works as getToken does; prefer getToken.)
     */
    token?: string | (() => string | Promise<string>);
    /**
     * Returns a token (e.g. fetched from your backend). Called before the first
     * connection, before every reconnect (also after the broker refused the
     * token with 4001 or 4002), and before the current token's `exp` (from the
     * JWT payload, not verified), when the new token is sent on the open
     * connection in an `auth` request. Returning the token just refused stops
     * the client (error code "token"). Without it, a 4001/4002 close is final.
     */
    getToken?: () => string | Promise<string>;
    /** Backoff between connection attempts, or false to never reconnect. */
    reconnect?: ReconnectOptions | false;
    /** Publishes held while not connected (default 1000); beyond, publish() rejects with "queue_full". 0 = none. */
    maxQueue?: number;
    /** Send an application ping after this many ms without traffic (default 20000; 0 = off). */
    pingInterval?: number;
    /** Drop the connection if nothing arrives this many ms after a ping (default 10000). */
    pingTimeout?: number;
    /** Give up on an attempt without a welcome after this many ms (default 10000). */
    connectTimeout?: number;
    /** Default bound of a subscription's iteration buffer (default 1000). */
    bufferSize?: number;
    /** WebSocket implementation; default globalThis.WebSocket (Node 20: pass `ws`'s WebSocket). */
    WebSocket?: WebSocketConstructor;
    /**
     * Transports allowed, in order of preference (default ["websocket"]). With
     * "sse" the client falls back to Server-Sent Events (GET /sse) for
     * receiving and fetch POST /api/publish for publishing after `sseAfter`
     * WebSocket attempts failed before the broker's welcome, or at once when
     * there is no WebSocket implementation (PROTOCOL.md 15).
     */
    transports?: Array<"websocket" | "sse">;
    /** Failed WebSocket attempts before the SSE fallback takes over for good (default 2). */
    sseAfter?: number;
    /** URL of the SSE endpoint (default: "sse" beside the WebSocket path, e.g. /ws → /sse). */
    sseUrl?: string;
    /** EventSource implementation; default globalThis.EventSource. */
    EventSource?: new (url: string) => EventTarget & { readonly readyState: number; readonly lastEventId?: string; close(): void; onerror: ((ev: unknown) => void) | null };
}

export interface SubscribeOptions {
    /**
     * Resume an exact topic, or a pattern inside a stream (PROTOCOL.md 3.1b),
     * from this position (ignored for other patterns). On a
     * topic this connection already holds, the broker replays for this
     * subscription all the same; the others skip what they have had.
     */
    since?: Position;
    /**
     * The last N messages the broker holds for an exact topic (ignored with
     * since); on a pattern, the last N of every matching topic with history
     * (PROTOCOL.md 3.1a), asked by the first subscription of that pattern on
     * this connection only (later ones get live messages).
     */
    history?: number;
    /** Bound of the iteration buffer (oldest messages dropped beyond it). */
    bufferSize?: number;
}

export interface DisconnectInfo {
    code: number;
    reason: string;
    /** ms until the next attempt. */
    reconnectIn: number;
    /** Failed attempts in a row, this one included. */
    attempt: number;
}

export interface CloseInfo {
    code: number;
    reason: string;
    /** Set when the client closed because of an error (e.g. code "protocol"). */
    error: WsbrokerError | null;
}

/** The ack of a subscribe that asked to recover with since. */
export interface RecoveredInfo {
    topic: string;
    /** false: the missed messages are gone (window exceeded, epoch changed, no history). */
    recovered: boolean;
    /** The topic's epoch and seq when the broker keeps history for it
     * (the stream's, for a subscription inside a stream). */
    epoch?: string;
    seq?: number;
    /** The stream's rule pattern, for a subscription inside a stream (PROTOCOL.md 3.1b). */
    stream?: string;
}

/** The broker dropped this topic's messages after `seq` (slow consumer),
 * or (with `to`) a stream's messages after `seq` up to `to` are lost. */
export interface GapInfo {
    /** The topic; inside a stream, the subscription (pattern or topic). */
    topic: string;
    epoch: string;
    seq: number;
    /** The stream's rule pattern, for a subscription inside a stream (PROTOCOL.md 4.6). */
    stream?: string;
    /** Set on a loss the broker could not recover: messages after `seq` up to `to` are gone. */
    to?: number;
}

/** The broker removed a subscription by itself (e.g. new credentials do not allow it). */
export interface UnsubscribedInfo {
    /** The pattern, exactly as subscribed. */
    topic: string;
    /** Why, an error code such as "forbidden". */
    code: string;
    message: string;
}

export interface ConnectionEvents {
    state: (state: ConnectionState, previous: ConnectionState) => void;
    open: (welcome: Welcome) => void;
    disconnect: (info: DisconnectInfo) => void;
    close: (info: CloseInfo) => void;
    error: (error: WsbrokerError) => void;
    message: (message: Message) => void;
    recovered: (info: RecoveredInfo) => void;
    gap: (info: GapInfo) => void;
    /** A stream subscription lost messages for good (a gap with `to`): after the "gap". */
    loss: (info: GapInfo) => void;
    unsubscribed: (info: UnsubscribedInfo) => void;
    /** A member subscribed to a topic whose rule has join_leave (never for this connection's own subscribe). */
    join: (info: MembershipInfo) => void;
    /** A member unsubscribed, disconnected, or its node died. */
    leave: (info: MembershipInfo) => void;
}

export interface SubscriptionEvents {
    subscribed: (info: SubscribedInfo) => void;
    recovered: (info: RecoveredInfo) => void;
    gap: (info: GapInfo) => void;
    /** As the connection's, for this subscription. */
    loss: (info: GapInfo) => void;
    unsubscribed: (info: UnsubscribedInfo) => void;
    /** As the connection's, for the topics this subscription's pattern matches. */
    join: (info: MembershipInfo) => void;
    leave: (info: MembershipInfo) => void;
    error: (error: WsbrokerError) => void;
    closed: (error: WsbrokerError | null) => void;
}

declare class Emitter<Events extends { [K in keyof Events]: (...args: any[]) => void }> {
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof Events>(event: K, listener: Events[K]): () => void;
    off<K extends keyof Events>(event: K, listener: Events[K]): void;
    once<K extends keyof Events>(event: K, listener: Events[K]): () => void;
}

export declare class Subscription<T = JsonValue> extends Emitter<SubscriptionEvents> implements AsyncIterable<Message<T>> {
    /** The pattern as given to subscribe(). */
    readonly topic: string;
    /** Messages dropped because the iteration buffer was full. */
    dropped: number;
    /** Messages handed to this subscription. */
    received: number;
    /** Resolves on the first ack; rejects with the broker's error (bad_topic, forbidden, …). */
    readonly ready: Promise<SubscribedInfo>;
    /** Acknowledged on the current socket. */
    readonly active: boolean;
    /** Unsubscribed, refused, or its connection closed. */
    readonly closed: boolean;
    /** Resolves when the broker acknowledged (at once when offline). */
    unsubscribe(): Promise<void>;
    /** Only for subscriptions without a callback. `break` unsubscribes. */
    [Symbol.asyncIterator](): AsyncIterator<Message<T>>;
}

export declare class Connection extends Emitter<ConnectionEvents> {
    constructor(url: string | URL, options?: ConnectOptions);
    readonly state: ConnectionState;
    /** "websocket", or "sse" once the SSE fallback took over (ConnectOptions.transports). */
    readonly transport: "websocket" | "sse";
    /** The last welcome, or null before the first. */
    readonly welcome: Welcome | null;
    readonly url: string;
    /** Publishes waiting for the socket to open. */
    readonly queued: number;
    readonly stats: {
        messages: number;
        published: number;
        acks: number;
        errors: number;
        connects: number;
        reconnects: number;
        /** Subscribes acknowledged with recovered: true. */
        recovered: number;
        /** Gap notices received. */
        gaps: number;
        /** Of them, losses (gaps with `to`). */
        losses: number;
    };
    subscribe<T = JsonValue>(
        pattern: string,
        callback?: (message: Message<T>, subscription: Subscription<T>) => void,
        options?: SubscribeOptions,
    ): Subscription<T>;
    subscribe<T = JsonValue>(pattern: string, options: SubscribeOptions): Subscription<T>;
    /** Resolves on the broker's ack; `undefined` data is sent as null. */
    publish(topic: string, data?: unknown): Promise<PublishAck>;
    /**
     * The members of an exact topic whose rule has presence (needs the right
     * to subscribe to it). Rejects with the broker's code ("forbidden",
     * "bad_topic", …), or "disconnected" when not open (never queued).
     */
    presence(topic: string): Promise<PresenceInfo>;
    /** Connection and user counts of presence(topic); rejects as presence() does. */
    presenceStats(topic: string): Promise<PresenceStats>;
    /**
     * Request/reply: sends `data` to the subscribers of `topic` and resolves
     * with the first reply (a responder publishes to the message's
     * `reply_to`). Rejects with code "no_responders" (nobody subscribes),
     * "timeout" (no reply within `timeout` ms: default 5000, 1..60000),
     * "disconnected" or the broker's error. Not queued while offline.
     */
    request<T = JsonValue>(topic: string, data: JsonValue, opts?: { timeout?: number }): Promise<Reply<T>>;
    /** Application-level round trip; resolves with the time in ms. */
    ping(): Promise<number>;
    /** Closes for good; safe to call twice. */
    close(): Promise<void>;
}

/** True when `topic` matches `pattern` (`*` one token, `>` one or more trailing tokens). */
export declare function matches(pattern: string, topic: string): boolean;
/** True when `pattern` contains no wildcard token. */
export declare function isExactTopic(pattern: string): boolean;

/**
 * Connects to `url` (ws://host:port/ws; http(s):// maps to ws(s)://; in a
 * browser a path such as "/ws" is relative to the page) and stays connected.
 */
export declare function connect(url: string | URL, options?: ConnectOptions): Connection;
export default connect;
