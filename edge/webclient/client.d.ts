// Code generated from client.ts by make client (edge/webclient/_build/build.mjs, TypeScript 5.9.3). DO NOT EDIT.
/** A transport name, in the client's order of preference. */
export type TransportName = "websocket" | "sse" | "longpoll";
/**
 * The browser API a transport runs on: "websocket"; "eventsource" or
 * "xhr" (streaming) for sse; "fetch" or "xhr" for longpoll.
 */
export type Via = "websocket" | "eventsource" | "xhr" | "fetch";
export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";
/** One protocol v1 envelope (docs/protocol.md). */
export interface Envelope<D = unknown> {
    v: 1;
    id?: string;
    type: string;
    room?: string;
    to?: string;
    from?: string;
    ts?: number;
    ref?: string;
    data?: D;
}
/** A Node-style callback: err is null on success. */
export type Callback<T> = (err: SwitchboardError | null, result?: T) => void;
/**
 * A JWT, or a function giving one. The function is called with a
 * Node-style callback: it returns the token (or a promise of it), or
 * returns nothing and passes the token to the callback (for engines
 * without Promise). Whichever comes first is used.
 */
export type TokenSource = string | (() => string | PromiseLike<string>) | ((done: (err: unknown, token?: string) => void) => string | PromiseLike<string> | void);
export interface Options {
    /** Rooms to join on every connect. Default []. */
    rooms?: string[];
    /** JWT, or a function giving one (called before every attempt, every poll and every POST /send). */
    token?: TokenSource;
    /** Development mode only (server without a JWT secret): the user id. */
    user?: string;
    /** Resume after this message id on the first connect. */
    since?: string;
    /** Transports to try, in order. Default ["websocket", "sse", "longpoll"]. */
    transports?: TransportName[];
    /** Milliseconds to wait for the server's first answer before trying the next transport. Default 5000. */
    connectTimeout?: number;
    /** Reconnect delays: full jitter over min(max, initial * factor^n). Default {initial: 500, max: 30000, factor: 2}. */
    backoff?: {
        initial?: number;
        max?: number;
        factor?: number;
    };
    /** A connection open this long (ms) resets the backoff. Default 5000. */
    stableAfter?: number;
    /** Milliseconds to wait for an ack. Default 10000. */
    requestTimeout?: number;
    /** WebSocket: send a ping after this many ms without traffic; 0 disables. Default 25000. */
    pingInterval?: number;
    /** Long-poll: seconds each poll may wait on the server. Default 25. */
    pollWait?: number;
    /** Remember the transport that worked (sessionStorage) and try it first next time. Default true. */
    remember?: boolean;
    /** Connect at once. Default true; otherwise call connect(). */
    autoConnect?: boolean;
}
export interface StateDetail {
    state: State;
    transport: TransportName;
    /** open: the browser API the transport runs on. */
    via?: Via;
    /** open: whether a resume lost nothing (absent when nothing was resumed). */
    recovered?: boolean;
    /** open: the rooms the server joined. */
    rooms?: string[];
    /** reconnecting: milliseconds until the next attempt. */
    delay?: number;
    /** reconnecting, closed: the close code (docs/protocol.md#close-codes). */
    code?: number;
    reason?: string;
}
export interface FallbackDetail {
    from: TransportName;
    to: TransportName;
    code: number;
    reason: string;
}
export interface Ack {
    room?: string;
    to?: string;
    /** The message id the broker assigned (publish, direct). */
    id?: string;
}
/** A request the server refused, or one whose outcome is unknown. */
declare class SwitchboardError extends Error {
    /**
     * A protocol error code (docs/protocol.md) or one of the client's own:
     * disconnected, timeout, network, closed, unauthorized, token (the token
     * callback failed), or http_<status> for an HTTP answer that is not a
     * protocol reply.
     */
    readonly code: string;
    readonly envelope?: Envelope<{
        code: string;
        message: string;
    }>;
    constructor(code: string, message: string, envelope?: Envelope<{
        code: string;
        message: string;
    }>);
}
/** connect(url, options) creates a Client and starts connecting. */
declare function connect(url?: string, options?: Options): Client;
declare class Client {
    constructor(url?: string, options?: Options);
    /** "idle" | "connecting" | "open" | "reconnecting" | "closed" */
    get state(): State;
    /** The transport in use (or being tried). */
    get transport(): TransportName;
    /** The browser API the transport in use (or being tried) runs on; "" before the first attempt. */
    get via(): Via | "";
    /** The user id the server assigned (WebSocket and SSE welcome). */
    get user(): string;
    /** The id of the last message received: what a resume starts after. */
    get lastId(): string;
    /** The rooms this client is in (resubscribed on every reconnect). */
    get rooms(): string[];
    /** Starts connecting; a no-op unless idle. */
    connect(): this;
    /**
     * on(type, fn) calls fn(envelope) for server envelopes of that type
     * ("message", "direct", "error", "gap", custom types, "*" for all), or
     * fn(detail) for the state events connecting, open, fallback,
     * reconnecting, closed and state. Returns a function that removes fn.
     */
    on(type: "connecting" | "open" | "reconnecting" | "closed" | "state", fn: (detail: StateDetail) => void): () => void;
    on(type: "fallback", fn: (detail: FallbackDetail) => void): () => void;
    on<D = unknown>(type: string, fn: (envelope: Envelope<D>) => void): () => void;
    off(type: string, fn: (arg: any) => void): void;
    /** Joins a room; settles once the server has it. */
    join(room: string): Promise<Ack>;
    join(room: string, callback: Callback<Ack>): void;
    /** Leaves a room. */
    leave(room: string): Promise<Ack>;
    leave(room: string, callback: Callback<Ack>): void;
    /** Publishes data to a room this client has joined; settles with {room, id}. */
    publish(room: string, data: unknown): Promise<Ack>;
    publish(room: string, data: unknown, callback: Callback<Ack>): void;
    /** Sends data privately to every connection of user `to`; settles with {to, id}. */
    direct(to: string, data: unknown): Promise<Ack>;
    direct(to: string, data: unknown, callback: Callback<Ack>): void;
    /**
     * Sends any envelope (for custom types registered on the server). With
     * {reply: true} (the default) settles with the reply envelope's data.
     */
    send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts?: {
        reply?: boolean;
    }): Promise<unknown>;
    send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts: {
        reply?: boolean;
    } | undefined, callback: Callback<unknown>): void;
    /** Closes the client for good; pending requests fail with "closed". */
    close(): void;
}
export { connect, Client, SwitchboardError };
