// Type declarations for the Switchboard browser client (/client.js).
// See docs/client.md.

export type TransportName = "websocket" | "sse" | "longpoll";

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

export interface Options {
  /** Rooms to join on every connect. Default []. */
  rooms?: string[];
  /** JWT, or a function returning one (called before every attempt and every POST /send). */
  token?: string | (() => string | Promise<string>);
  /** Development mode only (server without a JWT secret): the user id. */
  user?: string;
  /** Resume after this message id on the first connect. */
  since?: string;
  /** Transports to try, in order. Default ["websocket", "sse", "longpoll"]. */
  transports?: TransportName[];
  /** Milliseconds to wait for the server's first answer before trying the next transport. Default 5000. */
  connectTimeout?: number;
  /** Reconnect delays: full jitter over min(max, initial * factor^n). Default {initial: 500, max: 30000, factor: 2}. */
  backoff?: { initial?: number; max?: number; factor?: number };
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

/**
 * Rejection of every request: `code` is a protocol error code
 * (docs/protocol.md) or one of the client's own: disconnected, timeout,
 * network, closed, unauthorized, token (the token callback failed), or
 * http_<status> for an HTTP answer that is not a protocol reply.
 */
export declare class SwitchboardError extends Error {
  readonly code: string;
  readonly envelope?: Envelope<{ code: string; message: string }>;
}

export declare class Client {
  constructor(url?: string, options?: Options);
  readonly state: State;
  readonly transport: TransportName;
  /** The user id from the server's welcome (WebSocket, SSE). */
  readonly user: string;
  /** The last message id received: where a resume continues. */
  readonly lastId: string;
  readonly rooms: string[];

  connect(): this;
  on(type: "connecting" | "open" | "reconnecting" | "closed" | "state", fn: (detail: StateDetail) => void): () => void;
  on(type: "fallback", fn: (detail: FallbackDetail) => void): () => void;
  on<D = unknown>(type: string, fn: (envelope: Envelope<D>) => void): () => void;
  off(type: string, fn: (arg: any) => void): void;

  join(room: string): Promise<Ack>;
  leave(room: string): Promise<Ack>;
  publish(room: string, data: unknown): Promise<Ack>;
  direct(to: string, data: unknown): Promise<Ack>;
  send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts?: { reply?: boolean }): Promise<unknown>;
  close(): void;
}

/** Creates a client for the edge at url (default: this page's origin) and starts connecting. */
export declare function connect(url?: string, options?: Options): Client;
