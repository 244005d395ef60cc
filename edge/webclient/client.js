// Switchboard browser client: WebSocket with automatic fallback to
// Server-Sent Events and HTTP long-poll, reconnect with backoff and
// jitter, and resume from the last message id on every transport.
// Dependency-free. Served by the edge as an ES module at /client.js and as
// a classic script at /client.global.js (window.Switchboard). Documented in
// docs/client.md; types in /client.d.ts.

const TRANSPORTS = ["websocket", "sse", "longpoll"];
const NAME_RE = /^[A-Za-z0-9_\-.:@/=]{1,128}$/;
const SEEN = 1024; // ids remembered to drop a duplicate at a resume seam
const STORAGE_KEY = "switchboard:transport:";

const defaults = {
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
  constructor(code, message, envelope) {
    super(message);
    this.name = "SwitchboardError";
    this.code = code;
    this.envelope = envelope;
  }
}

/** connect(url, options) creates a Client and starts connecting. */
function connect(url, options) {
  return new Client(url, options);
}

class Client {
  constructor(url, options) {
    const o = Object.assign({}, defaults, options || {});
    o.backoff = Object.assign({}, defaults.backoff, (options && options.backoff) || {});
    for (const t of o.transports) {
      if (TRANSPORTS.indexOf(t) < 0) throw new TypeError(`switchboard: unknown transport "${t}" (use ${TRANSPORTS.join(", ")})`);
    }
    if (!o.transports.length) throw new TypeError("switchboard: transports is empty");
    for (const r of o.rooms) checkName("room", r);
    this._o = o;
    this._base = baseURL(url);
    this._rooms = new Set(o.rooms);
    this._handlers = new Map();
    this._pending = new Map();
    this._ref = 0;
    this._seen = new Set();
    this._seenOrder = [];
    this._since = o.since || "";
    this._order = this._transportOrder();
    this._idx = 0;
    this._opened = new Set(); // transports that reached "open" in this client
    this._fails = 0; // attempts since the last stable connection
    this._tFails = 0; // failures before open on the current transport
    this._conn = null;
    this._timer = null;
    this._waiters = [];
    this._gen = 0;
    this._refreshTimer = null;
    /** "idle" | "connecting" | "open" | "reconnecting" | "closed" */
    this.state = "idle";
    /** The transport in use (or being tried): "websocket" | "sse" | "longpoll". */
    this.transport = this._order[0];
    /** The user id the server assigned (WebSocket and SSE welcome). */
    this.user = "";
    if (typeof addEventListener === "function") {
      this._online = () => { if (this.state === "reconnecting") this._retryNow(); };
      addEventListener("online", this._online);
    }
    // Connect after the caller's synchronous code, so handlers attached
    // right after connect() see the first events.
    if (o.autoConnect) Promise.resolve().then(() => this.connect());
  }

  /** The id of the last message received: what a resume starts after. */
  get lastId() { return this._since; }

  /** The rooms this client is in (resubscribed on every reconnect). */
  get rooms() { return Array.from(this._rooms); }

  /** Starts connecting; a no-op unless idle. */
  connect() {
    if (this.state !== "idle") return this;
    this._attempt();
    return this;
  }

  /**
   * on(type, fn) calls fn(envelope) for server envelopes of that type
   * ("message", "direct", "error", "gap", custom types, "*" for all), or
   * fn(detail) for the state events connecting, open, fallback,
   * reconnecting, closed and state. Returns a function that removes fn.
   */
  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._handlers.get(type);
    if (set) set.delete(fn);
  }

  /** Joins a room; resolves once the server has it. */
  async join(room) {
    checkName("room", room);
    if (this.state === "closed") throw closedError();
    if (this._rooms.has(room)) return { room };
    if (this._isOpen("websocket")) {
      this._rooms.add(room);
      try {
        return await this._request({ type: "join", room });
      } catch (e) {
        if (e.code !== "disconnected") this._rooms.delete(room);
        throw e;
      }
    }
    this._rooms.add(room);
    return this._applyRooms(room);
  }

  /** Leaves a room. */
  async leave(room) {
    checkName("room", room);
    if (!this._rooms.has(room)) return { room };
    this._rooms.delete(room);
    if (this._isOpen("websocket")) return this._request({ type: "leave", room });
    return this._applyRooms(room);
  }

  // _applyRooms makes the server see the current room list when it cannot
  // be changed in-band: an open SSE or long-poll stream, or any attempt in
  // flight (its URL was built with the old list), is reopened and the
  // promise settles when the new one opens. With no connection (idle,
  // waiting to reconnect) the next attempt carries the list.
  async _applyRooms(room) {
    if (this.state === "connecting" || this.state === "open") await this._reopen();
    return { room };
  }

  /** Publishes data to a room this client has joined; resolves with {room, id}. */
  publish(room, data) {
    checkName("room", room);
    return this._request({ type: "publish", room, data });
  }

  /** Sends data privately to every connection of user `to`; resolves with {to, id}. */
  direct(to, data) {
    checkName("user", to);
    return this._request({ type: "direct", to, data });
  }

  /**
   * Sends any envelope (for custom types registered on the server). With
   * {reply: true} (the default) resolves with the reply envelope's data.
   */
  send(envelope, opts) {
    const reply = !opts || opts.reply !== false;
    return this._request(Object.assign({}, envelope), reply);
  }

  /** Closes the client for good; pending requests are rejected. */
  close() {
    if (this.state === "closed") return;
    clearTimeout(this._timer);
    this._drop(this._conn);
    this._conn = null;
    this._rejectPending(closedError());
    this._rejectWaiters(closedError());
    clearTimeout(this._refreshTimer);
    if (this._online) removeEventListener("online", this._online);
    this._setState("closed", { code: 1000, reason: "closed by client" });
  }

  // --- connection management ---

  _transportOrder() {
    const order = this._o.transports.slice();
    const remembered = this._recall();
    const i = order.indexOf(remembered);
    if (i > 0) order.unshift(order.splice(i, 1)[0]);
    return order;
  }

  _recall() {
    if (!this._o.remember) return "";
    try { return sessionStorage.getItem(STORAGE_KEY + this._base.host) || ""; } catch (e) { return ""; }
  }

  _remember(t) {
    if (!this._o.remember) return;
    try { sessionStorage.setItem(STORAGE_KEY + this._base.host, t); } catch (e) { /* storage unavailable */ }
  }

  _isOpen(t) {
    return this.state === "open" && this._conn && this._conn.name === t;
  }

  async _attempt() {
    this._timer = null;
    if (this.state === "closed") return;
    const gen = ++this._gen; // a newer attempt (reopen, retry) supersedes this one
    const name = this._order[this._idx];
    this.transport = name;
    this._setState("connecting", { transport: name });
    let token;
    try {
      token = await this._token();
    } catch (e) {
      if (gen !== this._gen || this.state === "closed") return;
      // The credentials are the problem, not the transport: back off and
      // retry the same one.
      this._schedule(this._delay(this._fails++), { code: 4001, reason: e.message });
      return;
    }
    if (gen !== this._gen || this.state === "closed") return;
    const params = { rooms: this.rooms.join(","), since: this._since, token, user: this._o.user };
    const conn = { name, opened: false, openedAt: 0, closed: false };
    this._conn = conn;
    const cb = {
      open: (welcome) => this._onOpen(conn, welcome),
      envelope: (env) => { if (this._conn === conn && !conn.closed) this._dispatch(env); },
      close: (info) => this._onClose(conn, info),
    };
    conn.openTimer = setTimeout(() => {
      if (!conn.opened && !conn.closed) this._onClose(conn, { code: 1006, reason: "no answer within " + this._o.connectTimeout + " ms" });
    }, this._o.connectTimeout);
    try {
      if (name === "websocket") openWebSocket(this, conn, params, cb);
      else if (name === "sse") openSSE(this, conn, params, cb);
      else openLongPoll(this, conn, params, cb);
    } catch (e) {
      this._onClose(conn, { code: 1006, reason: String(e && e.message || e) });
    }
  }

  // _token resolves the token option, bounded by connectTimeout so a
  // callback that never settles cannot stall the client.
  _token() {
    const t = this._o.token;
    if (typeof t !== "function") return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SwitchboardError("token", "token callback gave no token within " + this._o.connectTimeout + " ms")), this._o.connectTimeout);
      Promise.resolve().then(() => t()).then(
        (v) => { clearTimeout(timer); resolve(v); },
        (e) => { clearTimeout(timer); reject(new SwitchboardError("token", "token callback failed: " + (e && e.message || e))); },
      );
    });
  }

  _onOpen(conn, welcome) {
    if (this._conn !== conn || conn.closed || conn.opened) return;
    conn.opened = true;
    conn.openedAt = Date.now();
    clearTimeout(conn.openTimer);
    this._tFails = 0;
    this._opened.add(conn.name);
    // Remember a transport only if nothing the caller prefers has worked
    // here: a temporary downgrade (a restart) must not stick.
    const pref = this._o.transports;
    if (!pref.slice(0, pref.indexOf(conn.name)).some((t) => this._opened.has(t))) this._remember(conn.name);
    if (welcome && welcome.user) this.user = welcome.user;
    const recovered = welcome ? welcome.recovered : undefined;
    this._setState("open", { transport: conn.name, recovered, rooms: welcome && welcome.rooms });
    if (recovered === false) this._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
    this._scheduleRefresh(welcome && welcome.expires);
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) { clearTimeout(w.timer); w.resolve(); }
  }

  // _scheduleRefresh gets a new token from the token callback before the
  // server's expiry (welcome.expires, unix seconds): sent in-band over
  // WebSocket ({type: "refresh"}), by reopening an SSE stream (resuming,
  // so nothing is lost); long-poll sends a fresh token with every poll.
  _scheduleRefresh(expires) {
    clearTimeout(this._refreshTimer);
    if (!expires || typeof this._o.token !== "function") return;
    const left = expires * 1000 - Date.now();
    const at = Math.max(1000, Math.min(left - 30000, left * 0.8));
    this._refreshTimer = setTimeout(async () => {
      if (this.state !== "open" || !this._conn) return;
      if (this._conn.name === "sse") { this._reopen().catch(() => {}); return; }
      if (this._conn.name !== "websocket") return;
      try {
        const token = await this._token();
        const d = await this._request({ type: "refresh", data: { token } });
        this._scheduleRefresh(d && d.expires);
      } catch (e) {
        this._emit("error", { v: 1, type: "error", data: { code: e.code || "token", message: "token refresh failed: " + e.message } });
      }
    }, at);
  }

  _onClose(conn, info) {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    this._drop(conn);
    if (this._conn !== conn || this.state === "closed") return;
    this._conn = null;
    clearTimeout(this._refreshTimer);
    this._rejectPending(new SwitchboardError("disconnected", "connection lost before the reply: the request may or may not have taken effect"), conn);
    const refreshable = typeof this._o.token === "function";
    if (info.code === 4001 && refreshable) {
      // New credentials may work: ask the callback again, same transport.
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    // 1000: the server ended it deliberately; 4010: a backend
    // disconnected this client; 4403: the connect webhook refused it.
    if (info.code === 1000 || info.code === 4001 || info.code === 4010 || info.code === 4403 || info.reconnect === false) {
      this._rejectWaiters(new SwitchboardError(info.code === 4001 ? "unauthorized" : "closed", info.reason || "closed"));
      if (this._online) removeEventListener("online", this._online);
      this._rejectPending(closedError());
      this._setState("closed", info);
      return;
    }
    if (conn.opened) {
      if (Date.now() - conn.openedAt >= this._o.stableAfter) this._fails = 0;
      // After a downgrade, try the preferred transport that worked here
      // before again (it was down, not blocked).
      const best = this._o.transports.find((t) => this._opened.has(t));
      if (best && best !== conn.name) this._idx = this._order.indexOf(best);
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    this._failed(conn, info);
  }

  // _failed handles an attempt that ended before it opened: fall back to
  // the next transport at once if this one never worked (or failed three
  // times in a row), else retry it with backoff.
  _failed(conn, info) {
    this._fails++;
    this._tFails++;
    const name = this._order[this._idx];
    const limit = this._opened.has(name) ? 3 : 1;
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

  _delay(n) {
    const b = this._o.backoff;
    const cap = Math.min(b.max, b.initial * Math.pow(b.factor, Math.min(n, 30)));
    return Math.floor(Math.random() * cap);
  }

  _schedule(ms, info) {
    this._gen++; // an attempt still awaiting its token is superseded
    this._setState("reconnecting", { transport: this._order[this._idx], delay: ms, code: info.code, reason: info.reason });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._attempt(), ms);
  }

  _retryNow() {
    clearTimeout(this._timer);
    this._attempt();
  }

  // _reopen restarts the connection at once with the current rooms and
  // resolves when it is open (rejects after connectTimeout +
  // requestTimeout, or on close). The room list survives either way.
  _reopen() {
    const p = new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this._waiters = this._waiters.filter((x) => x !== w);
        reject(new SwitchboardError("timeout", "not connected yet; the room list is kept for the next connection"));
      }, this._o.connectTimeout + this._o.requestTimeout);
      this._waiters.push(w);
    });
    const conn = this._conn;
    this._conn = null;
    this._drop(conn);
    clearTimeout(this._timer);
    this._attempt();
    return p;
  }

  _drop(conn) {
    if (!conn) return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    if (conn.stop) conn.stop();
  }

  _setState(state, detail) {
    this.state = state;
    const d = Object.assign({ state, transport: this.transport }, detail || {});
    this._emit(state, d);
    this._emit("state", d);
  }

  _emit(type, arg) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const fn of Array.from(set)) {
      try { fn(arg); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  // --- envelopes ---

  _dispatch(env) {
    if (!env || typeof env.type !== "string") return;
    if (env.id) {
      if (this._seen.has(env.id)) return; // a resume seam: delivered already
      this._seen.add(env.id);
      this._seenOrder.push(env.id);
      if (this._seenOrder.length > SEEN) this._seen.delete(this._seenOrder.shift());
      this._since = env.id;
    }
    if (env.ref && (env.type === "ack" || env.type === "error" || env.type === "pong")) {
      const p = this._pending.get(env.ref);
      if (p) {
        this._pending.delete(env.ref);
        clearTimeout(p.timer);
        if (env.type === "error") {
          const d = env.data || {};
          p.reject(new SwitchboardError(d.code || "internal", d.message || "request failed", env));
        } else p.resolve(env.data === undefined ? {} : env.data);
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
  _request(fields, wantReply = true) {
    if (this.state === "closed") return Promise.reject(closedError());
    const env = Object.assign({ v: 1 }, fields);
    if (wantReply) env.ref = "c" + (++this._ref);
    if (this._isOpen("websocket")) {
      const conn = this._conn;
      return new Promise((resolve, reject) => {
        if (wantReply) {
          const timer = setTimeout(() => {
            this._pending.delete(env.ref);
            reject(new SwitchboardError("timeout", "no reply within " + this._o.requestTimeout + " ms"));
          }, this._o.requestTimeout);
          this._pending.set(env.ref, { resolve, reject, timer, conn });
        }
        try {
          conn.send(JSON.stringify(env));
        } catch (e) {
          const p = this._pending.get(env.ref);
          if (p) clearTimeout(p.timer);
          this._pending.delete(env.ref);
          reject(new SwitchboardError("disconnected", String(e)));
          return;
        }
        if (!wantReply) resolve({});
      });
    }
    return this._post(env);
  }

  async _post(env) {
    const token = await this._token();
    // In development mode the server trusts ?user=: post as the user the
    // stream was given, so "from" matches client.user.
    const url = endpoint(this._base, "send", { user: this._o.user || this.user, rooms: this.rooms.join(",") });
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const ctl = typeof AbortController === "function" ? new AbortController() : null;
    const timer = setTimeout(() => ctl && ctl.abort(), this._o.requestTimeout);
    let res, body;
    try {
      res = await fetch(url, {
        method: "POST",
        body: JSON.stringify(env),
        headers,
        signal: ctl ? ctl.signal : undefined,
        cache: "no-store",
      });
      body = await res.json();
    } catch (e) {
      throw new SwitchboardError(ctl && ctl.signal.aborted ? "timeout" : "network", "POST /send failed: " + (e && e.message || e) + " (the request may or may not have taken effect)");
    } finally {
      clearTimeout(timer);
    }
    const reply = Array.isArray(body) ? body[0] : body;
    if (reply && reply.type === "error") {
      const d = reply.data || {};
      throw new SwitchboardError(d.code || "http_" + res.status, d.message || "request failed", reply);
    }
    if (reply && reply.error) throw new SwitchboardError(reply.error.code || "http_" + res.status, reply.error.message || "request failed");
    if (!res.ok && res.status !== 202) throw new SwitchboardError("http_" + res.status, "POST /send answered " + res.status);
    return reply && reply.data !== undefined ? reply.data : {};
  }

  _rejectPending(err, conn) {
    for (const [ref, p] of this._pending) {
      if (conn && p.conn !== conn) continue;
      this._pending.delete(ref);
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  _rejectWaiters(err) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) { clearTimeout(w.timer); w.reject(err); }
  }
}

// --- transports: each opens one connection attempt and reports through
// cb.open(welcomeData), cb.envelope(env) and cb.close({code, reason,
// reconnect}); conn.stop() abandons it. ---

function openWebSocket(client, conn, params, cb) {
  if (typeof WebSocket !== "function") throw new Error("WebSocket is not available in this browser");
  // The token travels as a subprotocol, not in the URL (which proxies
  // log); the server selects "switchboard.v1".
  const { token, ...query } = params;
  const ws = token
    ? new WebSocket(endpoint(client._base, "ws", query, true), ["switchboard.v1", "switchboard.token." + token])
    : new WebSocket(endpoint(client._base, "ws", query, true));
  let pingTimer = null;
  conn.lastSeen = Date.now();
  conn.send = (s) => {
    if (ws.readyState !== 1) throw new Error("socket not open");
    ws.send(s);
  };
  conn.stop = () => {
    clearInterval(pingTimer);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(1000); } catch (e) { /* already closing */ }
  };
  ws.onmessage = (ev) => {
    conn.lastSeen = Date.now();
    if (typeof ev.data !== "string") return;
    for (const line of ev.data.split("\n")) {
      if (!line.trim()) continue;
      let env;
      try { env = JSON.parse(line); } catch (e) { continue; }
      if (env.type === "welcome" && !conn.opened) {
        cb.open(env.data || {});
        continue;
      }
      cb.envelope(env);
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
          conn.stop();
          cb.close({ code: 4009, reason: "no traffic from the server", reconnect: true });
        }
      } else if (now - conn.lastSeen >= every - tick && ws.readyState === 1) {
        ws.send(JSON.stringify({ v: 1, type: "ping", ref: "p" + (++client._ref) }));
        pingAt = now;
      }
    }, tick);
  }
}

function openSSE(client, conn, params, cb) {
  if (typeof EventSource !== "function") throw new Error("EventSource is not available in this browser");
  // Reconnects are ours (with since=), not EventSource's.
  const es = new EventSource(endpoint(client._base, "sse", params));
  conn.stop = () => es.close();
  es.onmessage = (ev) => {
    let env;
    try { env = JSON.parse(ev.data); } catch (e) { return; }
    if (env.type === "welcome" && !conn.opened) {
      cb.open(env.data || {});
      return;
    }
    cb.envelope(env);
  };
  es.addEventListener("close", (ev) => {
    let d = {};
    try { d = JSON.parse(ev.data); } catch (e) { /* keep defaults */ }
    es.close();
    cb.close({ code: d.code || 1006, reason: d.reason || "", reconnect: d.reconnect !== false });
  });
  es.onerror = () => {
    es.close();
    cb.close({ code: 1006, reason: conn.opened ? "stream dropped" : "stream failed (refused, unauthorized or blocked)", reconnect: true });
  };
}

function openLongPoll(client, conn, params, cb) {
  if (typeof fetch !== "function") throw new Error("fetch is not available in this browser");
  let ctl = null;
  conn.stop = () => { if (ctl) ctl.abort(); };
  let cursor = params.since || "";
  let token = params.token;
  const loop = async () => {
    let first = true;
    while (!conn.closed) {
      // The first poll answers at once, so a working transport is known
      // within connectTimeout; later ones wait for messages.
      const wait = first ? 0 : client._o.pollWait;
      const url = endpoint(client._base, "poll", { rooms: params.rooms, cursor, wait: String(wait), user: params.user });
      const headers = token ? { Authorization: "Bearer " + token } : {};
      ctl = typeof AbortController === "function" ? new AbortController() : null;
      const guard = setTimeout(() => ctl && ctl.abort(), (wait + 15) * 1000);
      let res, body;
      try {
        res = await fetch(url, { signal: ctl ? ctl.signal : undefined, cache: "no-store", headers });
        body = await res.json();
      } catch (e) {
        if (!conn.closed) cb.close({ code: 1006, reason: "poll failed: " + (e && e.message || e) });
        return;
      } finally {
        clearTimeout(guard);
      }
      if (conn.closed) return;
      if (!res.ok) {
        const err = (body && body.error) || {};
        const code = res.status === 401 ? 4001 : res.status === 503 ? 1012 : 1011;
        cb.close({ code, reason: err.message || "poll answered " + res.status, reconnect: res.status !== 400 });
        return;
      }
      if (first) {
        cb.open({ recovered: params.since ? body.recovered !== false : undefined, rooms: params.rooms ? params.rooms.split(",") : [] });
        // Errors about the request (a bad room) come with every poll:
        // report them once.
        for (const e of body.errors || []) cb.envelope(e);
      } else if (body.recovered === false) {
        client._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
      }
      first = false;
      const messages = body.messages || [];
      for (const m of messages) cb.envelope(m);
      // A handler may have reopened the stream (join): the rest of this
      // batch was not delivered, so the position must not move past it.
      if (conn.closed || client._conn !== conn) return;
      cursor = body.cursor || "";
      // With no message, the cursor is the log's head (or empty after a
      // gap): a switch to another transport resumes from there.
      if (!messages.length) client._since = cursor;
      if (typeof client._o.token === "function") {
        try { token = await client._token(); } catch (e) { cb.close({ code: 4001, reason: e.message }); return; }
      }
    }
  };
  loop();
}

// --- helpers ---

function baseURL(url) {
  const here = typeof location !== "undefined" ? location.href : "http://localhost/";
  const u = new URL(url || "/", here);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  if (!u.pathname.endsWith("/")) u.pathname += "/";
  u.search = "";
  u.hash = "";
  return u;
}

function endpoint(base, path, params, ws) {
  const u = new URL(path, base);
  for (const k of Object.keys(params)) {
    if (params[k] !== undefined && params[k] !== null && params[k] !== "") u.searchParams.set(k, params[k]);
  }
  if (ws) u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
}

function checkName(what, s) {
  if (typeof s !== "string" || !NAME_RE.test(s)) {
    throw new SwitchboardError(what === "room" ? "invalid_room" : "invalid_user", `${what} must be 1-128 characters of letters, digits and _ - . : @ / = (got ${JSON.stringify(s)})`);
  }
}

function closedError() {
  return new SwitchboardError("closed", "the client is closed");
}

export { connect, Client, SwitchboardError };
