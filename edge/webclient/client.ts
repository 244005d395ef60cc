// Switchboard browser client: WebSocket with automatic fallback to
// Server-Sent Events and HTTP long-poll, reconnect with backoff and
// jitter, and resume from the last message id on every transport.
// Dependency-free. Documented in docs/client.md.
//
// This is the one source of three builds (make client): the ES module
// /client.js with its declarations /client.d.ts, the classic script
// /client.global.js (window.Switchboard), and the ES5 classic script
// /client.legacy.js. It must run on an ES5 engine with XMLHttpRequest
// and JSON: it is type-checked against the ES5 library only (Map, Set,
// Object.assign, Array.from, Symbol, Promise, String#startsWith... do not
// compile), and every browser API beyond those (WebSocket, EventSource,
// fetch, AbortController, Promise, sessionStorage, addEventListener) is
// looked up at run time with typeof and has a fallback. The internals use
// callbacks, never async/await (downlevelled, it needs a global Promise);
// the public methods return a promise when Promise exists and take a
// Node-style callback in every build.

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
export type TokenSource =
  | string
  | (() => string | PromiseLike<string>)
  | ((done: (err: unknown, token?: string) => void) => string | PromiseLike<string> | void);

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

// --- what this source may use beyond ES5, looked up at run time ---

interface PromiseCtor {
  new <T>(executor: (resolve: (value: T) => void, reject: (reason: unknown) => void) => void): Promise<T>;
  resolve(): Promise<void>;
}
// The global Promise, or undefined in an engine without one.
declare const Promise: PromiseCtor | undefined;

interface Settings {
  rooms: string[];
  token?: TokenSource;
  user?: string;
  since?: string;
  transports: TransportName[];
  connectTimeout: number;
  backoff: { initial: number; max: number; factor: number };
  stableAfter: number;
  requestTimeout: number;
  pingInterval: number;
  pollWait: number;
  remember: boolean;
  autoConnect: boolean;
}

interface Welcome {
  user?: string;
  recovered?: boolean;
  rooms?: string[];
  expires?: number;
}

interface CloseInfo {
  code: number;
  reason: string;
  reconnect?: boolean;
}

// Conn is one connection attempt; the transport's open function fills
// in via, stop and (WebSocket) send.
interface Conn {
  name: TransportName;
  via: Via;
  opened: boolean;
  openedAt: number;
  closed: boolean;
  openTimer?: number;
  lastSeen: number;
  stop?: () => void;
  send?: (s: string) => void;
}

interface ConnCallbacks {
  open(welcome: Welcome): void;
  envelope(env: Envelope): void;
  close(info: CloseInfo): void;
}

type Params = {
  rooms: string;
  since: string;
  token?: string;
  user?: string;
};

interface Base {
  href: string; // absolute http(s) URL ending in "/"
  host: string;
}

type Dict<T> = { [key: string]: T };

const TRANSPORTS: TransportName[] = ["websocket", "sse", "longpoll"];
const NAME_RE = /^[A-Za-z0-9_\-.:@/=]{1,128}$/;
const SEEN = 1024; // ids remembered to drop a duplicate at a resume seam
const STORAGE_KEY = "switchboard:transport:";
// An XHR stream keeps its whole response in memory: past this many
// characters it is reopened (resuming from the last id, nothing lost).
const XHR_STREAM_MAX = 256 * 1024;

const defaults: Settings = {
  rooms: [],
  token: undefined,
  user: undefined,
  since: undefined,
  transports: TRANSPORTS,
  connectTimeout: 5000,
  backoff: { initial: 500, max: 30000, factor: 2 },
  stableAfter: 5000,
  requestTimeout: 10000,
  pingInterval: 25000,
  pollWait: 25,
  remember: true,
  autoConnect: true,
};

/** A request the server refused, or one whose outcome is unknown. */
class SwitchboardError extends Error {
  /**
   * A protocol error code (docs/protocol.md) or one of the client's own:
   * disconnected, timeout, network, closed, unauthorized, token (the token
   * callback failed), or http_<status> for an HTTP answer that is not a
   * protocol reply.
   */
  readonly code: string;
  readonly envelope?: Envelope<{ code: string; message: string }>;
  constructor(code: string, message: string, envelope?: Envelope<{ code: string; message: string }>) {
    super(message);
    // Compiled to ES5, Error's constructor returns a plain Error: give it
    // this class's prototype so instanceof works.
    inherit(this, SwitchboardError.prototype);
    this.name = "SwitchboardError";
    this.code = code;
    this.envelope = envelope;
  }
}

/** connect(url, options) creates a Client and starts connecting. */
function connect(url?: string, options?: Options): Client {
  return new Client(url, options);
}

class Client {
  /** @internal */ _o: Settings;
  /** @internal */ _base: Base;
  /** @internal */ _rooms: string[];
  /** @internal */ _handlers: Dict<Array<(arg: any) => void>>;
  /** @internal */ _pending: Dict<{ done: Callback<any>; timer: number; conn: Conn }>;
  /** @internal */ _ref: number;
  /** @internal */ _seen: Dict<boolean>;
  /** @internal */ _seenOrder: string[];
  /** @internal */ _since: string;
  /** @internal */ _order: TransportName[];
  /** @internal */ _idx: number;
  /** @internal */ _opened: Dict<boolean>; // transports that reached "open" in this client
  /** @internal */ _fails: number; // attempts since the last stable connection
  /** @internal */ _tFails: number; // failures before open on the current transport
  /** @internal */ _conn: Conn | null;
  /** @internal */ _timer: number | undefined;
  /** @internal */ _waiters: Array<{ done: (err: SwitchboardError | null) => void; timer: number }>;
  /** @internal */ _gen: number;
  /** @internal */ _refreshTimer: number | undefined;
  /** @internal */ _online: (() => void) | undefined;
  /** @internal */ _state: State;
  /** @internal */ _transport: TransportName;
  /** @internal */ _user: string;

  constructor(url?: string, options?: Options) {
    const o: Settings = extend(extend({}, defaults), options);
    o.backoff = extend(extend({}, defaults.backoff), options && options.backoff);
    for (let i = 0; i < o.transports.length; i++) {
      const t = o.transports[i];
      if (indexOf(TRANSPORTS, t) < 0) throw new TypeError('switchboard: unknown transport "' + t + '" (use ' + TRANSPORTS.join(", ") + ")");
    }
    if (!o.transports.length) throw new TypeError("switchboard: transports is empty");
    for (let i = 0; i < o.rooms.length; i++) {
      const err = nameError("room", o.rooms[i]);
      if (err) throw err;
    }
    this._o = o;
    this._base = baseURL(url);
    this._rooms = [];
    for (let i = 0; i < o.rooms.length; i++) addTo(this._rooms, o.rooms[i]);
    this._handlers = {};
    this._pending = {};
    this._ref = 0;
    this._seen = {};
    this._seenOrder = [];
    this._since = o.since || "";
    this._order = this._transportOrder();
    this._idx = 0;
    this._opened = {};
    this._fails = 0;
    this._tFails = 0;
    this._conn = null;
    this._timer = undefined;
    this._waiters = [];
    this._gen = 0;
    this._refreshTimer = undefined;
    this._online = undefined;
    this._state = "idle";
    this._transport = this._order[0];
    this._user = "";
    if (typeof addEventListener === "function") {
      this._online = () => {
        if (this._state === "reconnecting") this._retryNow();
      };
      addEventListener("online", this._online);
    }
    // Connect after the caller's synchronous code, so handlers attached
    // right after connect() see the first events.
    if (o.autoConnect) defer(() => this.connect());
  }

  /** "idle" | "connecting" | "open" | "reconnecting" | "closed" */
  get state(): State {
    return this._state;
  }

  /** The transport in use (or being tried). */
  get transport(): TransportName {
    return this._transport;
  }

  /** The browser API the transport in use (or being tried) runs on; "" before the first attempt. */
  get via(): Via | "" {
    return this._conn ? this._conn.via : "";
  }

  /** The user id the server assigned (WebSocket and SSE welcome). */
  get user(): string {
    return this._user;
  }

  /** The id of the last message received: what a resume starts after. */
  get lastId(): string {
    return this._since;
  }

  /** The rooms this client is in (resubscribed on every reconnect). */
  get rooms(): string[] {
    return this._rooms.slice();
  }

  /** Starts connecting; a no-op unless idle. */
  connect(): this {
    if (this._state !== "idle") return this;
    this._attempt();
    return this;
  }

  /**
   * on(type, fn) calls fn(envelope) for server envelopes of that type
   * ("message", "direct", "error", "gap", custom types, "*" for all), or
   * fn(detail) for the state events connecting, open, fallback,
   * reconnecting, closed and state. Returns a function that removes fn.
   */
  on(type: "connecting" | "open" | "reconnecting" | "closed" | "state", fn: (detail: StateDetail) => void): () => void;
  on(type: "fallback", fn: (detail: FallbackDetail) => void): () => void;
  on<D = unknown>(type: string, fn: (envelope: Envelope<D>) => void): () => void;
  on(type: string, fn: (arg: any) => void): () => void {
    const list = this._handlers[type] || (this._handlers[type] = []);
    addTo(list, fn);
    return () => this.off(type, fn);
  }

  off(type: string, fn: (arg: any) => void): void {
    const list = this._handlers[type];
    if (list) removeFrom(list, fn);
  }

  /** Joins a room; settles once the server has it. */
  join(room: string): Promise<Ack>;
  join(room: string, callback: Callback<Ack>): void;
  join(room: string, callback?: Callback<Ack>): Promise<Ack> | void {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad) return done(bad);
      if (this._state === "closed") return done(closedError());
      if (indexOf(this._rooms, room) >= 0) return done(null, { room });
      addTo(this._rooms, room);
      if (this._isOpen("websocket")) {
        this._request({ type: "join", room }, true, (err, ack) => {
          if (err && err.code !== "disconnected") removeFrom(this._rooms, room);
          done(err, ack);
        });
        return;
      }
      this._applyRooms(room, done);
    });
  }

  /** Leaves a room. */
  leave(room: string): Promise<Ack>;
  leave(room: string, callback: Callback<Ack>): void;
  leave(room: string, callback?: Callback<Ack>): Promise<Ack> | void {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad) return done(bad);
      if (indexOf(this._rooms, room) < 0) return done(null, { room });
      removeFrom(this._rooms, room);
      if (this._isOpen("websocket")) this._request({ type: "leave", room }, true, done);
      else this._applyRooms(room, done);
    });
  }

  // _applyRooms makes the server see the current room list when it cannot
  // be changed in-band: an open SSE or long-poll stream, or any attempt in
  // flight (its URL was built with the old list), is reopened and done is
  // called when the new one opens. With no connection (idle, waiting to
  // reconnect) the next attempt carries the list.
  /** @internal */
  _applyRooms(room: string, done: Callback<Ack>): void {
    if (this._state === "connecting" || this._state === "open") {
      this._reopen((err) => done(err, err ? undefined : { room }));
    } else done(null, { room });
  }

  /** Publishes data to a room this client has joined; settles with {room, id}. */
  publish(room: string, data: unknown): Promise<Ack>;
  publish(room: string, data: unknown, callback: Callback<Ack>): void;
  publish(room: string, data: unknown, callback?: Callback<Ack>): Promise<Ack> | void {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad) done(bad);
      else this._request({ type: "publish", room, data }, true, done);
    });
  }

  /** Sends data privately to every connection of user `to`; settles with {to, id}. */
  direct(to: string, data: unknown): Promise<Ack>;
  direct(to: string, data: unknown, callback: Callback<Ack>): void;
  direct(to: string, data: unknown, callback?: Callback<Ack>): Promise<Ack> | void {
    return settle(callback, (done) => {
      const bad = nameError("user", to);
      if (bad) done(bad);
      else this._request({ type: "direct", to, data }, true, done);
    });
  }

  /**
   * Sends any envelope (for custom types registered on the server). With
   * {reply: true} (the default) settles with the reply envelope's data.
   */
  send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts?: { reply?: boolean }): Promise<unknown>;
  send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts: { reply?: boolean } | undefined, callback: Callback<unknown>): void;
  send(envelope: Omit<Envelope, "v" | "id" | "ref" | "from" | "ts">, opts?: { reply?: boolean }, callback?: Callback<unknown>): Promise<unknown> | void {
    const reply = !opts || opts.reply !== false;
    return settle(callback, (done) => this._request(extend({}, envelope), reply, done));
  }

  /** Closes the client for good; pending requests fail with "closed". */
  close(): void {
    if (this._state === "closed") return;
    clearTimeout(this._timer);
    this._drop(this._conn);
    this._conn = null;
    this._failPending(closedError());
    this._failWaiters(closedError());
    clearTimeout(this._refreshTimer);
    if (this._online) removeEventListener("online", this._online);
    this._setState("closed", { code: 1000, reason: "closed by client" });
  }

  // --- connection management ---

  /** @internal */
  _transportOrder(): TransportName[] {
    const order = this._o.transports.slice();
    const i = indexOf(order, this._recall() as TransportName);
    if (i > 0) order.unshift(order.splice(i, 1)[0]);
    return order;
  }

  /** @internal */
  _recall(): string {
    if (!this._o.remember) return "";
    try {
      return sessionStorage.getItem(STORAGE_KEY + this._base.host) || "";
    } catch (e) {
      return "";
    }
  }

  /** @internal */
  _remember(t: TransportName): void {
    if (!this._o.remember) return;
    try {
      sessionStorage.setItem(STORAGE_KEY + this._base.host, t);
    } catch (e) {
      /* storage unavailable */
    }
  }

  /** @internal */
  _isOpen(t: TransportName): boolean {
    return this._state === "open" && !!this._conn && this._conn.name === t;
  }

  /** @internal */
  _attempt(): void {
    this._timer = undefined;
    if (this._state === "closed") return;
    const gen = ++this._gen; // a newer attempt (reopen, retry) supersedes this one
    const name = this._order[this._idx];
    this._transport = name;
    this._setState("connecting", { transport: name });
    this._token((err, token) => {
      if (gen !== this._gen || this._state === "closed") return;
      if (err) {
        // The credentials are the problem, not the transport: back off
        // and retry the same one.
        this._schedule(this._delay(this._fails++), { code: 4001, reason: err.message });
        return;
      }
      this._open(name, { rooms: this._rooms.join(","), since: this._since, token, user: this._o.user });
    });
  }

  /** @internal */
  _open(name: TransportName, params: Params): void {
    const conn: Conn = { name, via: name === "websocket" ? "websocket" : "xhr", opened: false, openedAt: 0, closed: false, lastSeen: 0 };
    this._conn = conn;
    const cb: ConnCallbacks = {
      open: (welcome) => this._onOpen(conn, welcome),
      envelope: (env) => {
        if (this._conn === conn && !conn.closed) this._dispatch(env);
      },
      close: (info) => this._onClose(conn, info),
    };
    conn.openTimer = setTimeout(() => {
      if (!conn.opened && !conn.closed) this._onClose(conn, { code: 1006, reason: "no answer within " + this._o.connectTimeout + " ms" });
    }, this._o.connectTimeout);
    try {
      if (name === "websocket") openWebSocket(this, conn, params, cb);
      else if (name === "sse") openStream(this, conn, params, cb);
      else openLongPoll(this, conn, params, cb);
    } catch (e) {
      this._onClose(conn, { code: 1006, reason: errText(e) });
    }
  }

  // _token gets the token option's value, bounded by connectTimeout so a
  // callback that never settles cannot stall the client.
  /** @internal */
  _token(done: (err: SwitchboardError | null, token?: string) => void): void {
    const t = this._o.token;
    if (typeof t !== "function") return done(null, t);
    const ms = this._o.connectTimeout;
    let finished = false;
    let timer: number | undefined;
    const finish = (err: SwitchboardError | null, token?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      done(err, token);
    };
    const fail = (e: unknown) => finish(new SwitchboardError("token", "token callback failed: " + errText(e)));
    try {
      // Every function gets the callback, whatever it declares (a
      // getToken(force) returning a promise must keep working); what it
      // returns wins unless that is undefined, and then the callback
      // does. Whichever settles first is used.
      const v = (t as (done: (err: unknown, token?: string) => void) => unknown)((e, x) => (e ? fail(e) : finish(null, x)));
      if (v && typeof (v as PromiseLike<string>).then === "function") (v as PromiseLike<string>).then((x) => finish(null, x), fail);
      else if (v !== undefined) finish(null, v as string);
    } catch (e) {
      // Thrown after the token was given: by the code it was given to,
      // which must not be mistaken for the token function (and swallowed).
      if (finished) throw e;
      fail(e);
    }
    if (!finished) timer = setTimeout(() => finish(new SwitchboardError("token", "token callback gave no token within " + ms + " ms")), ms);
  }

  /** @internal */
  _onOpen(conn: Conn, welcome: Welcome): void {
    if (this._conn !== conn || conn.closed || conn.opened) return;
    conn.opened = true;
    conn.openedAt = Date.now();
    clearTimeout(conn.openTimer);
    this._tFails = 0;
    this._opened[conn.name] = true;
    // Remember a transport only if nothing the caller prefers has worked
    // here: a temporary downgrade (a restart) must not stick.
    const pref = this._o.transports;
    let better = false;
    for (let i = 0; i < indexOf(pref, conn.name); i++) better = better || !!this._opened[pref[i]];
    if (!better) this._remember(conn.name);
    if (welcome.user) this._user = welcome.user;
    const recovered = welcome.recovered;
    this._setState("open", { transport: conn.name, via: conn.via, recovered, rooms: welcome.rooms });
    if (recovered === false) this._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
    this._scheduleRefresh(welcome.expires);
    const waiters = this._waiters;
    this._waiters = [];
    for (let i = 0; i < waiters.length; i++) {
      clearTimeout(waiters[i].timer);
      waiters[i].done(null);
    }
  }

  // _scheduleRefresh gets a new token from the token callback before the
  // server's expiry (welcome.expires, unix seconds): sent in-band over
  // WebSocket ({type: "refresh"}), by reopening an SSE stream (resuming,
  // so nothing is lost); long-poll sends a fresh token with every poll.
  /** @internal */
  _scheduleRefresh(expires: number | undefined): void {
    clearTimeout(this._refreshTimer);
    if (!expires || typeof this._o.token !== "function") return;
    const left = expires * 1000 - Date.now();
    const at = Math.max(1000, Math.min(left - 30000, left * 0.8));
    const failed = (e: SwitchboardError) => {
      this._emit("error", { v: 1, type: "error", data: { code: e.code || "token", message: "token refresh failed: " + e.message } });
    };
    this._refreshTimer = setTimeout(() => {
      const conn = this._conn;
      if (this._state !== "open" || !conn) return;
      if (conn.name === "sse") return this._reopen(noop);
      if (conn.name !== "websocket") return;
      this._token((err, token) => {
        if (err) return failed(err);
        this._request({ type: "refresh", data: { token } }, true, (err2, d) => {
          if (err2) failed(err2);
          else this._scheduleRefresh(d && d.expires);
        });
      });
    }, at);
  }

  /** @internal */
  _onClose(conn: Conn, info: CloseInfo): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    this._drop(conn);
    if (this._conn !== conn || this._state === "closed") return;
    this._conn = null;
    clearTimeout(this._refreshTimer);
    this._failPending(new SwitchboardError("disconnected", "connection lost before the reply: the request may or may not have taken effect"), conn);
    const refreshable = typeof this._o.token === "function";
    if (info.code === 4001 && refreshable) {
      // New credentials may work: ask the callback again, same transport.
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    // 1000: the server ended it deliberately; 4010: a backend
    // disconnected this client; 4403: the connect webhook refused it.
    if (info.code === 1000 || info.code === 4001 || info.code === 4010 || info.code === 4403 || info.reconnect === false) {
      this._failWaiters(new SwitchboardError(info.code === 4001 ? "unauthorized" : "closed", info.reason || "closed"));
      if (this._online) removeEventListener("online", this._online);
      this._failPending(closedError());
      this._setState("closed", info);
      return;
    }
    if (conn.opened) {
      if (Date.now() - conn.openedAt >= this._o.stableAfter) this._fails = 0;
      // After a downgrade, try the preferred transport that worked here
      // before again (it was down, not blocked).
      const pref = this._o.transports;
      for (let i = 0; i < pref.length; i++) {
        if (!this._opened[pref[i]]) continue;
        if (pref[i] !== conn.name) this._idx = indexOf(this._order, pref[i]);
        break;
      }
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    this._failed(info);
  }

  // _failed handles an attempt that ended before it opened: fall back to
  // the next transport at once if this one never worked (or failed three
  // times in a row), else retry it with backoff.
  /** @internal */
  _failed(info: CloseInfo): void {
    this._fails++;
    this._tFails++;
    const name = this._order[this._idx];
    const limit = this._opened[name] ? 3 : 1;
    if (this._tFails >= limit && this._order.length > 1) {
      const next = (this._idx + 1) % this._order.length;
      this._tFails = 0;
      this._emit("fallback", { from: name, to: this._order[next], reason: info.reason, code: info.code });
      this._idx = next;
      if (next !== 0) {
        this._schedule(0, info);
        return;
      }
    }
    this._schedule(this._delay(this._fails - 1), info);
  }

  /** @internal */
  _delay(n: number): number {
    const b = this._o.backoff;
    const cap = Math.min(b.max, b.initial * Math.pow(b.factor, Math.min(n, 30)));
    return Math.floor(Math.random() * cap);
  }

  /** @internal */
  _schedule(ms: number, info: CloseInfo): void {
    this._gen++; // an attempt still waiting for its token is superseded
    this._setState("reconnecting", { transport: this._order[this._idx], delay: ms, code: info.code, reason: info.reason });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._attempt(), ms);
  }

  /** @internal */
  _retryNow(): void {
    clearTimeout(this._timer);
    this._attempt();
  }

  // _reopen restarts the connection at once with the current rooms and
  // calls done when it is open (with an error after connectTimeout +
  // requestTimeout, or on close). The room list survives either way.
  /** @internal */
  _reopen(done: (err: SwitchboardError | null) => void): void {
    const w = {
      done,
      timer: setTimeout(() => {
        removeFrom(this._waiters, w);
        done(new SwitchboardError("timeout", "not connected yet; the room list is kept for the next connection"));
      }, this._o.connectTimeout + this._o.requestTimeout),
    };
    this._waiters.push(w);
    this._restart();
  }

  // _restart drops the connection (or the attempt in flight) and starts
  // a new attempt at once; it resumes from lastId like any reconnect.
  /** @internal */
  _restart(): void {
    const conn = this._conn;
    this._conn = null;
    this._drop(conn);
    clearTimeout(this._timer);
    this._attempt();
  }

  /** @internal */
  _drop(conn: Conn | null): void {
    if (!conn) return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    if (conn.stop) conn.stop();
  }

  /** @internal */
  _setState(state: State, detail: Partial<StateDetail>): void {
    this._state = state;
    const d = extend({ state, transport: this._transport }, detail);
    this._emit(state, d);
    this._emit("state", d);
  }

  /** @internal */
  _emit(type: string, arg: unknown): void {
    const list = this._handlers[type];
    if (!list) return;
    const fns = list.slice();
    for (let i = 0; i < fns.length; i++) {
      try {
        fns[i](arg);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }

  // --- envelopes ---

  /** @internal */
  _dispatch(env: Envelope): void {
    if (!env || typeof env.type !== "string") return;
    if (env.id) {
      if (this._seen[env.id]) return; // a resume seam: delivered already
      this._seen[env.id] = true;
      this._seenOrder.push(env.id);
      if (this._seenOrder.length > SEEN) delete this._seen[this._seenOrder.shift() as string];
      this._since = env.id;
    }
    if (env.ref && (env.type === "ack" || env.type === "error" || env.type === "pong")) {
      const p = this._pending[env.ref];
      if (p) {
        delete this._pending[env.ref];
        clearTimeout(p.timer);
        if (env.type === "error") {
          const d = (env.data || {}) as { code?: string; message?: string };
          p.done(new SwitchboardError(d.code || "internal", d.message || "request failed", env as Envelope<{ code: string; message: string }>));
        } else p.done(null, env.data === undefined ? {} : env.data);
        return;
      }
      if (env.type === "pong") return;
    }
    if (env.type === "welcome") return;
    this._emit(env.type, env);
    this._emit("*", env);
  }

  // _request sends one envelope: over the WebSocket when it is open,
  // otherwise with POST /send (stateless, any node, the same rooms and
  // credentials as the stream).
  /** @internal */
  _request(fields: Dict<unknown>, wantReply: boolean, done: Callback<any>): void {
    if (this._state === "closed") return done(closedError());
    const env: Dict<unknown> = extend({ v: 1 }, fields);
    const ref = wantReply ? "c" + ++this._ref : "";
    if (ref) env.ref = ref;
    let line: string;
    try {
      line = JSON.stringify(env);
    } catch (e) {
      return done(new SwitchboardError("bad_request", "the envelope is not JSON: " + errText(e)));
    }
    const conn = this._conn;
    if (!conn || !this._isOpen("websocket")) return this._post(line, done);
    if (ref) {
      const timer = setTimeout(() => {
        delete this._pending[ref];
        done(new SwitchboardError("timeout", "no reply within " + this._o.requestTimeout + " ms"));
      }, this._o.requestTimeout);
      this._pending[ref] = { done, timer, conn };
    }
    try {
      (conn.send as (s: string) => void)(line);
    } catch (e) {
      const p = ref ? this._pending[ref] : undefined;
      if (p) {
        clearTimeout(p.timer);
        delete this._pending[ref];
      }
      return done(new SwitchboardError("disconnected", errText(e)));
    }
    if (!ref) done(null, {});
  }

  /** @internal */
  _post(line: string, done: Callback<any>): void {
    this._token((err, token) => {
      if (err) return done(err);
      // In development mode the server trusts ?user=: post as the user
      // the stream was given, so "from" matches client.user.
      const url = endpoint(this._base, "send", { user: this._o.user || this._user, rooms: this._rooms.join(",") });
      const headers: Dict<string> = { "Content-Type": "application/json" };
      if (token) headers.Authorization = "Bearer " + token;
      httpRequest("POST", url, headers, line, this._o.requestTimeout, (herr, status, body) => {
        if (herr) return done(new SwitchboardError(herr.code, "POST /send failed: " + herr.message + " (the request may or may not have taken effect)"));
        const reply = isArray(body) ? body[0] : body;
        if (reply && reply.type === "error") {
          const d = reply.data || {};
          return done(new SwitchboardError(d.code || "http_" + status, d.message || "request failed", reply));
        }
        if (reply && reply.error) return done(new SwitchboardError(reply.error.code || "http_" + status, reply.error.message || "request failed"));
        if ((status < 200 || status > 299) && status !== 202) return done(new SwitchboardError("http_" + status, "POST /send answered " + status));
        done(null, reply && reply.data !== undefined ? reply.data : {});
      });
    });
  }

  /** @internal */
  _failPending(err: SwitchboardError, conn?: Conn): void {
    for (const ref in this._pending) {
      if (!has(this._pending, ref)) continue;
      const p = this._pending[ref];
      if (conn && p.conn !== conn) continue;
      delete this._pending[ref];
      clearTimeout(p.timer);
      p.done(err);
    }
  }

  /** @internal */
  _failWaiters(err: SwitchboardError): void {
    const waiters = this._waiters;
    this._waiters = [];
    for (let i = 0; i < waiters.length; i++) {
      clearTimeout(waiters[i].timer);
      waiters[i].done(err);
    }
  }
}

// --- transports: each opens one connection attempt and reports through
// cb.open(welcomeData), cb.envelope(env) and cb.close({code, reason,
// reconnect}); conn.stop() abandons it. ---

function openWebSocket(client: Client, conn: Conn, params: Params, cb: ConnCallbacks): void {
  if (typeof WebSocket !== "function" && typeof WebSocket !== "object") throw new Error("WebSocket is not available in this browser");
  // The token travels as a subprotocol, not in the URL (which proxies
  // log); the server selects "switchboard.v1".
  const url = endpoint(client._base, "ws", { rooms: params.rooms, since: params.since, user: params.user }, true);
  const ws = params.token ? new WebSocket(url, ["switchboard.v1", "switchboard.token." + params.token]) : new WebSocket(url);
  let pingTimer: number | undefined;
  conn.via = "websocket";
  conn.lastSeen = Date.now();
  conn.send = (s) => {
    if (ws.readyState !== 1) throw new Error("socket not open");
    ws.send(s);
  };
  conn.stop = () => {
    clearInterval(pingTimer);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000);
    } catch (e) {
      /* already closing */
    }
  };
  ws.onmessage = (ev) => {
    conn.lastSeen = Date.now();
    if (typeof ev.data !== "string") return;
    const lines = ev.data.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (!conn.closed) onEnvelope(conn, cb, lines[i]);
    }
  };
  ws.onclose = (ev) => {
    clearInterval(pingTimer);
    const code = ev.code || 1006;
    cb.close({ code, reason: ev.reason || (code === 1006 ? "connection failed or dropped" : ""), reconnect: code !== 4001 && code !== 1000 });
  };
  // Browsers hide WebSocket pings: after pingInterval without traffic,
  // send an application ping, and give up on the socket only when
  // nothing at all arrives within requestTimeout of that ping. The check
  // runs often enough that the ping goes out within pingInterval of the
  // last traffic, whatever the two settings.
  const every = client._o.pingInterval;
  const wait = client._o.requestTimeout;
  if (every > 0) {
    const tick = Math.max(100, Math.floor(Math.min(every, wait) / 4));
    let pingAt = 0; // when the unanswered ping went out; 0: none
    pingTimer = setInterval(() => {
      const now = Date.now();
      if (pingAt && conn.lastSeen >= pingAt) pingAt = 0; // answered (or other traffic)
      if (pingAt) {
        if (now - pingAt >= wait) {
          conn.stop!();
          cb.close({ code: 4009, reason: "no traffic from the server", reconnect: true });
        }
      } else if (now - conn.lastSeen >= every - tick && ws.readyState === 1) {
        ws.send(JSON.stringify({ v: 1, type: "ping", ref: "p" + ++client._ref }));
        pingAt = now;
      }
    }, tick);
  }
}

// openStream reads GET /sse with EventSource, or, in a browser without
// it, with an XMLHttpRequest whose response is read as it grows
// (readyState 3). A browser that buffers the response shows nothing
// before connectTimeout, so the client falls back to long-poll as it
// does behind a proxy that buffers event streams.
function openStream(client: Client, conn: Conn, params: Params, cb: ConnCallbacks): void {
  if (typeof EventSource === "function" || typeof EventSource === "object") {
    openEventSource(client, conn, params, cb);
    return;
  }
  if (typeof XMLHttpRequest === "undefined") throw new Error("neither EventSource nor XMLHttpRequest is available in this browser");
  conn.via = "xhr";
  // The token goes in a header, which EventSource cannot send.
  const xhr = new XMLHttpRequest();
  xhr.open("GET", endpoint(client._base, "sse", { rooms: params.rooms, since: params.since, user: params.user }), true);
  if (params.token) xhr.setRequestHeader("Authorization", "Bearer " + params.token);
  let seen = 0; // characters of the response read
  let buf = ""; // the start of a line not yet complete
  let event = "";
  let data: string[] = [];
  let ended = false;
  conn.stop = () => {
    ended = true;
    xhr.onreadystatechange = noop;
    xhr.onprogress = null;
    try {
      xhr.abort();
    } catch (e) {
      /* already done */
    }
  };
  const read = () => {
    if (ended || xhr.readyState < 3 || xhr.status !== 200) return;
    let text: string;
    try {
      text = xhr.responseText;
    } catch (e) {
      return; // not readable before the end (old Internet Explorer)
    }
    if (text.length <= seen) return;
    buf += text.substring(seen);
    seen = text.length;
    conn.lastSeen = Date.now();
    let i: number;
    while (!conn.closed && (i = buf.indexOf("\n")) >= 0) {
      let line = buf.substring(0, i);
      buf = buf.substring(i + 1);
      if (line.charAt(line.length - 1) === "\r") line = line.substring(0, line.length - 1);
      if (line === "") {
        if (data.length) onStreamEvent(conn, cb, event || "message", data.join("\n"));
        event = "";
        data = [];
        continue;
      }
      const c = line.indexOf(":");
      if (c === 0) continue; // a comment: the server's heartbeat
      const field = c < 0 ? line : line.substring(0, c);
      let value = c < 0 ? "" : line.substring(c + 1);
      if (value.charAt(0) === " ") value = value.substring(1);
      if (field === "data") data.push(value);
      else if (field === "event") event = value;
    }
    if (!conn.closed && conn.opened && seen > XHR_STREAM_MAX && !buf && !data.length && client._conn === conn) client._restart();
  };
  xhr.onreadystatechange = () => {
    read();
    if (ended || conn.closed || xhr.readyState !== 4) return;
    ended = true;
    const status = xhr.status;
    if (status === 200) {
      cb.close({ code: 1006, reason: conn.opened ? "stream dropped" : "stream ended before the welcome", reconnect: true });
      return;
    }
    cb.close(httpClose(status, errorBody(xhr.responseText), "stream"));
  };
  xhr.onprogress = read;
  xhr.send();
}

function openEventSource(client: Client, conn: Conn, params: Params, cb: ConnCallbacks): void {
  conn.via = "eventsource";
  // Reconnects are ours (with since=), not EventSource's.
  const es = new EventSource(endpoint(client._base, "sse", params));
  conn.stop = () => es.close();
  es.onmessage = (ev) => onStreamEvent(conn, cb, "message", ev.data);
  es.addEventListener("close", (ev) => onStreamEvent(conn, cb, "close", (ev as MessageEvent).data));
  es.onerror = () => {
    es.close();
    cb.close({ code: 1006, reason: conn.opened ? "stream dropped" : "stream failed (refused, unauthorized or blocked)", reconnect: true });
  };
}

// onStreamEvent handles one event of an event stream: a "close" event
// ends the connection with the server's code; a message is an envelope.
function onStreamEvent(conn: Conn, cb: ConnCallbacks, event: string, data: string): void {
  if (event === "message") {
    onEnvelope(conn, cb, data);
    return;
  }
  if (event !== "close") return;
  let d: { code?: number; reason?: string; reconnect?: boolean } = {};
  try {
    d = JSON.parse(data) || {};
  } catch (e) {
    /* keep defaults */
  }
  if (conn.stop) conn.stop();
  cb.close({ code: d.code || 1006, reason: d.reason || "", reconnect: d.reconnect !== false });
}

// onEnvelope parses one envelope: the first welcome opens the connection.
function onEnvelope(conn: Conn, cb: ConnCallbacks, text: string): void {
  if (!text || !/\S/.test(text)) return;
  let env: Envelope;
  try {
    env = JSON.parse(text);
  } catch (e) {
    return;
  }
  if (!env) return;
  if (env.type === "welcome" && !conn.opened) {
    cb.open((env.data || {}) as Welcome);
    return;
  }
  cb.envelope(env);
}

interface PollAnswer {
  messages?: Envelope[];
  errors?: Envelope[];
  cursor?: string;
  recovered?: boolean;
  error?: { message?: string };
}

function openLongPoll(client: Client, conn: Conn, params: Params, cb: ConnCallbacks): void {
  if (httpVia() === "") throw new Error("neither fetch nor XMLHttpRequest is available in this browser");
  conn.via = httpVia() as Via;
  let abort: (() => void) | null = null;
  conn.stop = () => {
    if (abort) abort();
  };
  let cursor = params.since || "";
  let token = params.token;
  let first = true;
  const poll = () => {
    if (conn.closed) return;
    // The first poll answers at once, so a working transport is known
    // within connectTimeout; later ones wait for messages.
    const wait = first ? 0 : client._o.pollWait;
    const url = endpoint(client._base, "poll", { rooms: params.rooms, cursor, wait: String(wait), user: params.user });
    const headers: Dict<string> = token ? { Authorization: "Bearer " + token } : {};
    abort = httpRequest("GET", url, headers, null, (wait + 15) * 1000, (err, status, body: PollAnswer | undefined) => {
      abort = null;
      if (conn.closed) return;
      if (err) {
        cb.close({ code: 1006, reason: "poll failed: " + err.message });
        return;
      }
      if (status < 200 || status > 299 || !body) {
        cb.close(httpClose(status, (body && body.error && body.error.message) || "", "poll"));
        return;
      }
      if (first) {
        cb.open({ recovered: params.since ? body.recovered !== false : undefined, rooms: params.rooms ? params.rooms.split(",") : [] });
        // Errors about the request (a bad room) come with every poll:
        // report them once.
        const errors = body.errors || [];
        for (let i = 0; i < errors.length; i++) cb.envelope(errors[i]);
      } else if (body.recovered === false) {
        client._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
      }
      first = false;
      const messages = body.messages || [];
      for (let i = 0; i < messages.length; i++) cb.envelope(messages[i]);
      // A handler may have reopened the stream (join): the rest of this
      // batch was not delivered, so the position must not move past it.
      if (conn.closed || client._conn !== conn) return;
      cursor = body.cursor || "";
      // With no message, the cursor is the log's head (or empty after a
      // gap): a switch to another transport resumes from there.
      if (!messages.length) client._since = cursor;
      if (typeof client._o.token !== "function") return poll();
      client._token((terr, t) => {
        if (conn.closed) return;
        if (terr) return cb.close({ code: 4001, reason: terr.message });
        token = t;
        poll();
      });
    });
  };
  poll();
}

// httpClose is the close info for an HTTP answer refusing a stream or a
// poll: 401 is 4001 (unauthorized), 503 is 1012 (restarting), 400 ends
// the client; status 0 is a request that never got an answer.
function httpClose(status: number, message: string, what: string): CloseInfo {
  const code = status === 401 ? 4001 : status === 503 ? 1012 : status ? 1011 : 1006;
  return { code, reason: message || (status ? what + " answered " + status : what + " failed (unreachable, refused or blocked)"), reconnect: status !== 400 };
}

function errorBody(text: string): string {
  try {
    const b = JSON.parse(text);
    return (b && b.error && b.error.message) || "";
  } catch (e) {
    return "";
  }
}

// --- HTTP requests: fetch where there is one (with Promise), else
// XMLHttpRequest ---

interface HttpError {
  code: "timeout" | "network";
  message: string;
}

function httpVia(): Via | "" {
  if (typeof fetch === "function" && typeof Promise === "function") return "fetch";
  return typeof XMLHttpRequest === "undefined" ? "" : "xhr";
}

// httpRequest sends one request and calls done once with the status and
// the JSON body (undefined if empty, or not JSON on an error status), or
// with an error: no answer within timeout ms, or none at all, or a
// request the browser refused to send (it never throws). It returns a
// function that abandons the request (done is then never called).
function httpRequest(method: string, url: string, headers: Dict<string>, body: string | null, timeout: number, done: (err: HttpError | null, status: number, body: any) => void): () => void {
  let finished = false;
  let cancel = noop;
  const finish = (err: HttpError | null, status: number, text: string) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (err) return done(err, status, undefined);
    let parsed: unknown;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        if (status >= 200 && status < 300) return done({ code: "network", message: "the answer is not JSON" }, status, undefined);
      }
    }
    done(null, status, parsed);
  };
  const timer = setTimeout(() => {
    cancel();
    finish({ code: "timeout", message: "no answer within " + timeout + " ms" }, 0, "");
  }, timeout);
  if (httpVia() === "fetch") {
    const ctl = typeof AbortController === "function" ? new AbortController() : null;
    cancel = () => {
      if (ctl) ctl.abort();
    };
    fetch(url, { method, body, headers, signal: ctl ? ctl.signal : undefined, cache: "no-store" })
      .then((res) => res.text().then((text) => ({ status: res.status, text })))
      .then(
        (r) => finish(null, r.status, r.text),
        (e) => finish({ code: "network", message: errText(e) }, 0, ""),
      );
  } else if (typeof XMLHttpRequest === "undefined") {
    finish({ code: "network", message: "neither fetch nor XMLHttpRequest is available" }, 0, "");
  } else {
    const xhr = new XMLHttpRequest();
    cancel = () => {
      xhr.onreadystatechange = noop;
      try {
        xhr.abort();
      } catch (e) {
        /* already done */
      }
    };
    try {
      xhr.open(method, url, true);
      for (const k in headers) if (has(headers, k)) xhr.setRequestHeader(k, headers[k]);
      xhr.onreadystatechange = () => {
        if (xhr.readyState !== 4) return;
        if (xhr.status) finish(null, xhr.status, xhr.responseText);
        else finish({ code: "network", message: "no answer (unreachable, refused or blocked)" }, 0, "");
      };
      xhr.send(body);
    } catch (e) {
      // setRequestHeader throws at once on a value it refuses (a token
      // with a line break): a failed request, as fetch reports it, not
      // an exception out of a poll loop, which would stop it silently.
      cancel();
      setTimeout(() => finish({ code: "network", message: errText(e) }, 0, ""), 0);
    }
  }
  return () => {
    finished = true;
    clearTimeout(timer);
    cancel();
  };
}

// --- helpers ---

// settle runs start with a Node-style done callback and gives its
// outcome to callback, always asynchronously; without a callback it
// returns a promise of it, or, with no Promise in the engine, nothing.
function settle<T>(callback: Callback<T> | undefined, start: (done: Callback<T>) => void): Promise<T> | void {
  if (typeof callback === "function") {
    let sync = true;
    let called = false;
    start((err, v) => {
      if (called) return;
      called = true;
      if (sync) setTimeout(() => callback(err, v), 0);
      else callback(err, v);
    });
    sync = false;
    return;
  }
  if (typeof Promise !== "function") {
    start(noop);
    return;
  }
  return new Promise<T>((resolve, reject) => start((err, v) => (err ? reject(err) : resolve(v as T))));
}

// defer runs fn after the current synchronous code: as a microtask where
// there is Promise, else as a timer.
function defer(fn: () => void): void {
  if (typeof Promise === "function") Promise.resolve().then(fn);
  else setTimeout(fn, 0);
}

// inherit gives o the prototype p (Object.setPrototypeOf is ES2015;
// __proto__ is what older engines have, where they have anything).
function inherit(o: object, p: object): void {
  if (Object.getPrototypeOf(o) === p) return;
  const set = (Object as { setPrototypeOf?: (o: object, p: object) => void }).setPrototypeOf;
  if (set) set(o, p);
  else (o as { __proto__?: object }).__proto__ = p;
}

function noop(): void {}

function has(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

// extend copies src's own properties onto target (Object.assign is ES2015).
function extend<T>(target: object, src?: object): T {
  if (src) for (const k in src) if (has(src, k)) (target as Dict<unknown>)[k] = (src as Dict<unknown>)[k];
  return target as T;
}

function indexOf<T>(list: T[], x: T): number {
  for (let i = 0; i < list.length; i++) if (list[i] === x) return i;
  return -1;
}

function addTo<T>(list: T[], x: T): void {
  if (indexOf(list, x) < 0) list.push(x);
}

function removeFrom<T>(list: T[], x: T): void {
  const i = indexOf(list, x);
  if (i >= 0) list.splice(i, 1);
}

function isArray(x: unknown): x is any[] {
  return Object.prototype.toString.call(x) === "[object Array]";
}

function errText(e: unknown): string {
  return String((e && (e as Error).message) || e);
}

// baseURL resolves url against the page (no URL API: ES5 engines lack
// it) to an absolute http(s) URL ending in "/", without query or
// fragment. Dot segments are left for the browser to resolve.
function baseURL(url?: string): Base {
  const here = typeof location !== "undefined" ? location.href : "http://localhost/";
  const page = /^([a-z][a-z0-9+.\-]*:)\/\/([^\/?#]*)([^?#]*)/i.exec(here) || ["", "http:", "localhost", "/"];
  let u = (url || "/").replace(/[?#].*$/, "");
  if (/^\/\//.test(u)) u = page[1] + u;
  else if (/^\//.test(u)) u = page[1] + "//" + page[2] + u;
  else if (!/^[a-z][a-z0-9+.\-]*:/i.test(u)) u = page[1] + "//" + page[2] + page[3].replace(/[^\/]*$/, "") + u;
  const m = /^([a-z][a-z0-9+.\-]*):\/\/([^\/]*)(.*)$/i.exec(u);
  if (!m) throw new TypeError("switchboard: not a URL: " + url);
  const scheme = m[1].toLowerCase() === "wss" || m[1].toLowerCase() === "https" ? "https" : "http";
  let path = m[3] || "/";
  if (path.charAt(path.length - 1) !== "/") path += "/";
  return { href: scheme + "://" + m[2] + path, host: m[2] };
}

function endpoint(base: Base, path: string, params: Dict<string | undefined>, ws?: boolean): string {
  let u = base.href + path;
  let sep = "?";
  for (const k in params) {
    const v = params[k];
    if (!has(params, k) || v === undefined || v === null || v === "") continue;
    u += sep + encodeURIComponent(k) + "=" + encodeURIComponent(v);
    sep = "&";
  }
  return ws ? u.replace(/^http/, "ws") : u;
}

function nameError(what: "room" | "user", s: unknown): SwitchboardError | null {
  if (typeof s === "string" && NAME_RE.test(s)) return null;
  return new SwitchboardError(what === "room" ? "invalid_room" : "invalid_user", what + " must be 1-128 characters of letters, digits and _ - . : @ / = (got " + JSON.stringify(s) + ")");
}

function closedError(): SwitchboardError {
  return new SwitchboardError("closed", "the client is closed");
}

export { connect, Client, SwitchboardError };
