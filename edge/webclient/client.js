// Code generated from client.ts by make client (edge/webclient/_build/build.mjs, TypeScript 5.9.3). DO NOT EDIT.
// Source: edge/webclient/client.ts. API docs: /client.d.ts, docs/client.md.
const TRANSPORTS = ["websocket", "sse", "longpoll"];
const NAME_RE = /^[A-Za-z0-9_\-.:@/=]{1,128}$/;
const SEEN = 1024;
const STORAGE_KEY = "switchboard:transport:";
const XHR_STREAM_MAX = 256 * 1024;
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
class SwitchboardError extends Error {
  constructor(code, message, envelope) {
    super(message);
    inherit(this, SwitchboardError.prototype);
    this.name = "SwitchboardError";
    this.code = code;
    this.envelope = envelope;
  }
}
function connect(url, options) {
  return new Client(url, options);
}
class Client {
  constructor(url, options) {
    const o = extend(extend({}, defaults), options);
    o.backoff = extend(extend({}, defaults.backoff), options && options.backoff);
    for (let i = 0; i < o.transports.length; i++) {
      const t = o.transports[i];
      if (indexOf(TRANSPORTS, t) < 0)
        throw new TypeError('switchboard: unknown transport "' + t + '" (use ' + TRANSPORTS.join(", ") + ")");
    }
    if (!o.transports.length)
      throw new TypeError("switchboard: transports is empty");
    for (let i = 0; i < o.rooms.length; i++) {
      const err = nameError("room", o.rooms[i]);
      if (err)
        throw err;
    }
    this._o = o;
    this._base = baseURL(url);
    this._rooms = [];
    for (let i = 0; i < o.rooms.length; i++)
      addTo(this._rooms, o.rooms[i]);
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
        if (this._state === "reconnecting")
          this._retryNow();
      };
      addEventListener("online", this._online);
    }
    if (o.autoConnect)
      defer(() => this.connect());
  }
  get state() {
    return this._state;
  }
  get transport() {
    return this._transport;
  }
  get via() {
    return this._conn ? this._conn.via : "";
  }
  get user() {
    return this._user;
  }
  get lastId() {
    return this._since;
  }
  get rooms() {
    return this._rooms.slice();
  }
  connect() {
    if (this._state !== "idle")
      return this;
    this._attempt();
    return this;
  }
  on(type, fn) {
    const list = this._handlers[type] || (this._handlers[type] = []);
    addTo(list, fn);
    return () => this.off(type, fn);
  }
  off(type, fn) {
    const list = this._handlers[type];
    if (list)
      removeFrom(list, fn);
  }
  join(room, callback) {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad)
        return done(bad);
      if (this._state === "closed")
        return done(closedError());
      if (indexOf(this._rooms, room) >= 0)
        return done(null, { room });
      addTo(this._rooms, room);
      if (this._isOpen("websocket")) {
        this._request({ type: "join", room }, true, (err, ack) => {
          if (err && err.code !== "disconnected")
            removeFrom(this._rooms, room);
          done(err, ack);
        });
        return;
      }
      this._applyRooms(room, done);
    });
  }
  leave(room, callback) {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad)
        return done(bad);
      if (indexOf(this._rooms, room) < 0)
        return done(null, { room });
      removeFrom(this._rooms, room);
      if (this._isOpen("websocket"))
        this._request({ type: "leave", room }, true, done);
      else
        this._applyRooms(room, done);
    });
  }
  _applyRooms(room, done) {
    if (this._state === "connecting" || this._state === "open") {
      this._reopen((err) => done(err, err ? undefined : { room }));
    }
    else
      done(null, { room });
  }
  publish(room, data, callback) {
    return settle(callback, (done) => {
      const bad = nameError("room", room);
      if (bad)
        done(bad);
      else
        this._request({ type: "publish", room, data }, true, done);
    });
  }
  direct(to, data, callback) {
    return settle(callback, (done) => {
      const bad = nameError("user", to);
      if (bad)
        done(bad);
      else
        this._request({ type: "direct", to, data }, true, done);
    });
  }
  send(envelope, opts, callback) {
    const reply = !opts || opts.reply !== false;
    return settle(callback, (done) => this._request(extend({}, envelope), reply, done));
  }
  close() {
    if (this._state === "closed")
      return;
    clearTimeout(this._timer);
    this._drop(this._conn);
    this._conn = null;
    this._failPending(closedError());
    this._failWaiters(closedError());
    clearTimeout(this._refreshTimer);
    if (this._online)
      removeEventListener("online", this._online);
    this._setState("closed", { code: 1000, reason: "closed by client" });
  }
  _transportOrder() {
    const order = this._o.transports.slice();
    const i = indexOf(order, this._recall());
    if (i > 0)
      order.unshift(order.splice(i, 1)[0]);
    return order;
  }
  _recall() {
    if (!this._o.remember)
      return "";
    try {
      return sessionStorage.getItem(STORAGE_KEY + this._base.host) || "";
    }
    catch (e) {
      return "";
    }
  }
  _remember(t) {
    if (!this._o.remember)
      return;
    try {
      sessionStorage.setItem(STORAGE_KEY + this._base.host, t);
    }
    catch (e) {
    }
  }
  _isOpen(t) {
    return this._state === "open" && !!this._conn && this._conn.name === t;
  }
  _attempt() {
    this._timer = undefined;
    if (this._state === "closed")
      return;
    const gen = ++this._gen;
    const name = this._order[this._idx];
    this._transport = name;
    this._setState("connecting", { transport: name });
    this._token((err, token) => {
      if (gen !== this._gen || this._state === "closed")
        return;
      if (err) {
        this._schedule(this._delay(this._fails++), { code: 4001, reason: err.message });
        return;
      }
      this._open(name, { rooms: this._rooms.join(","), since: this._since, token, user: this._o.user });
    });
  }
  _open(name, params) {
    const conn = { name, via: name === "websocket" ? "websocket" : "xhr", opened: false, openedAt: 0, closed: false, lastSeen: 0 };
    this._conn = conn;
    const cb = {
      open: (welcome) => this._onOpen(conn, welcome),
      envelope: (env) => {
        if (this._conn === conn && !conn.closed)
          this._dispatch(env);
      },
      close: (info) => this._onClose(conn, info),
    };
    conn.openTimer = setTimeout(() => {
      if (!conn.opened && !conn.closed)
        this._onClose(conn, { code: 1006, reason: "no answer within " + this._o.connectTimeout + " ms" });
    }, this._o.connectTimeout);
    try {
      if (name === "websocket")
        openWebSocket(this, conn, params, cb);
      else if (name === "sse")
        openStream(this, conn, params, cb);
      else
        openLongPoll(this, conn, params, cb);
    }
    catch (e) {
      this._onClose(conn, { code: 1006, reason: errText(e) });
    }
  }
  _token(done) {
    const t = this._o.token;
    if (typeof t !== "function")
      return done(null, t);
    const ms = this._o.connectTimeout;
    let finished = false;
    let timer;
    const finish = (err, token) => {
      if (finished)
        return;
      finished = true;
      clearTimeout(timer);
      done(err, token);
    };
    const fail = (e) => finish(new SwitchboardError("token", "token callback failed: " + errText(e)));
    try {
      const v = t((e, x) => (e ? fail(e) : finish(null, x)));
      if (v && typeof v.then === "function")
        v.then((x) => finish(null, x), fail);
      else if (v !== undefined)
        finish(null, v);
    }
    catch (e) {
      if (finished)
        throw e;
      fail(e);
    }
    if (!finished)
      timer = setTimeout(() => finish(new SwitchboardError("token", "token callback gave no token within " + ms + " ms")), ms);
  }
  _onOpen(conn, welcome) {
    if (this._conn !== conn || conn.closed || conn.opened)
      return;
    conn.opened = true;
    conn.openedAt = Date.now();
    clearTimeout(conn.openTimer);
    this._tFails = 0;
    this._opened[conn.name] = true;
    const pref = this._o.transports;
    let better = false;
    for (let i = 0; i < indexOf(pref, conn.name); i++)
      better = better || !!this._opened[pref[i]];
    if (!better)
      this._remember(conn.name);
    if (welcome.user)
      this._user = welcome.user;
    const recovered = welcome.recovered;
    this._setState("open", { transport: conn.name, via: conn.via, recovered, rooms: welcome.rooms });
    if (recovered === false)
      this._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
    this._scheduleRefresh(welcome.expires);
    const waiters = this._waiters;
    this._waiters = [];
    for (let i = 0; i < waiters.length; i++) {
      clearTimeout(waiters[i].timer);
      waiters[i].done(null);
    }
  }
  _scheduleRefresh(expires) {
    clearTimeout(this._refreshTimer);
    if (!expires || typeof this._o.token !== "function")
      return;
    const left = expires * 1000 - Date.now();
    const at = Math.max(1000, Math.min(left - 30000, left * 0.8));
    const failed = (e) => {
      this._emit("error", { v: 1, type: "error", data: { code: e.code || "token", message: "token refresh failed: " + e.message } });
    };
    this._refreshTimer = setTimeout(() => {
      const conn = this._conn;
      if (this._state !== "open" || !conn)
        return;
      if (conn.name === "sse")
        return this._reopen(noop);
      if (conn.name !== "websocket")
        return;
      this._token((err, token) => {
        if (err)
          return failed(err);
        this._request({ type: "refresh", data: { token } }, true, (err2, d) => {
          if (err2)
            failed(err2);
          else
            this._scheduleRefresh(d && d.expires);
        });
      });
    }, at);
  }
  _onClose(conn, info) {
    if (conn.closed)
      return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    this._drop(conn);
    if (this._conn !== conn || this._state === "closed")
      return;
    this._conn = null;
    clearTimeout(this._refreshTimer);
    this._failPending(new SwitchboardError("disconnected", "connection lost before the reply: the request may or may not have taken effect"), conn);
    const refreshable = typeof this._o.token === "function";
    if (info.code === 4001 && refreshable) {
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    if (info.code === 1000 || info.code === 4001 || info.code === 4010 || info.code === 4403 || info.reconnect === false) {
      this._failWaiters(new SwitchboardError(info.code === 4001 ? "unauthorized" : "closed", info.reason || "closed"));
      if (this._online)
        removeEventListener("online", this._online);
      this._failPending(closedError());
      this._setState("closed", info);
      return;
    }
    if (conn.opened) {
      if (Date.now() - conn.openedAt >= this._o.stableAfter)
        this._fails = 0;
      const pref = this._o.transports;
      for (let i = 0; i < pref.length; i++) {
        if (!this._opened[pref[i]])
          continue;
        if (pref[i] !== conn.name)
          this._idx = indexOf(this._order, pref[i]);
        break;
      }
      this._schedule(this._delay(this._fails++), info);
      return;
    }
    this._failed(info);
  }
  _failed(info) {
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
  _delay(n) {
    const b = this._o.backoff;
    const cap = Math.min(b.max, b.initial * Math.pow(b.factor, Math.min(n, 30)));
    return Math.floor(Math.random() * cap);
  }
  _schedule(ms, info) {
    this._gen++;
    this._setState("reconnecting", { transport: this._order[this._idx], delay: ms, code: info.code, reason: info.reason });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._attempt(), ms);
  }
  _retryNow() {
    clearTimeout(this._timer);
    this._attempt();
  }
  _reopen(done) {
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
  _restart() {
    const conn = this._conn;
    this._conn = null;
    this._drop(conn);
    clearTimeout(this._timer);
    this._attempt();
  }
  _drop(conn) {
    if (!conn)
      return;
    conn.closed = true;
    clearTimeout(conn.openTimer);
    if (conn.stop)
      conn.stop();
  }
  _setState(state, detail) {
    this._state = state;
    const d = extend({ state, transport: this._transport }, detail);
    this._emit(state, d);
    this._emit("state", d);
  }
  _emit(type, arg) {
    const list = this._handlers[type];
    if (!list)
      return;
    const fns = list.slice();
    for (let i = 0; i < fns.length; i++) {
      try {
        fns[i](arg);
      }
      catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
  _dispatch(env) {
    if (!env || typeof env.type !== "string")
      return;
    if (env.id) {
      if (this._seen[env.id])
        return;
      this._seen[env.id] = true;
      this._seenOrder.push(env.id);
      if (this._seenOrder.length > SEEN)
        delete this._seen[this._seenOrder.shift()];
      this._since = env.id;
    }
    if (env.ref && (env.type === "ack" || env.type === "error" || env.type === "pong")) {
      const p = this._pending[env.ref];
      if (p) {
        delete this._pending[env.ref];
        clearTimeout(p.timer);
        if (env.type === "error") {
          const d = (env.data || {});
          p.done(new SwitchboardError(d.code || "internal", d.message || "request failed", env));
        }
        else
          p.done(null, env.data === undefined ? {} : env.data);
        return;
      }
      if (env.type === "pong")
        return;
    }
    if (env.type === "welcome")
      return;
    this._emit(env.type, env);
    this._emit("*", env);
  }
  _request(fields, wantReply, done) {
    if (this._state === "closed")
      return done(closedError());
    const env = extend({ v: 1 }, fields);
    const ref = wantReply ? "c" + ++this._ref : "";
    if (ref)
      env.ref = ref;
    let line;
    try {
      line = JSON.stringify(env);
    }
    catch (e) {
      return done(new SwitchboardError("bad_request", "the envelope is not JSON: " + errText(e)));
    }
    const conn = this._conn;
    if (!conn || !this._isOpen("websocket"))
      return this._post(line, done);
    if (ref) {
      const timer = setTimeout(() => {
        delete this._pending[ref];
        done(new SwitchboardError("timeout", "no reply within " + this._o.requestTimeout + " ms"));
      }, this._o.requestTimeout);
      this._pending[ref] = { done, timer, conn };
    }
    try {
      conn.send(line);
    }
    catch (e) {
      const p = ref ? this._pending[ref] : undefined;
      if (p) {
        clearTimeout(p.timer);
        delete this._pending[ref];
      }
      return done(new SwitchboardError("disconnected", errText(e)));
    }
    if (!ref)
      done(null, {});
  }
  _post(line, done) {
    this._token((err, token) => {
      if (err)
        return done(err);
      const url = endpoint(this._base, "send", { user: this._o.user || this._user, rooms: this._rooms.join(",") });
      const headers = { "Content-Type": "application/json" };
      if (token)
        headers.Authorization = "Bearer " + token;
      httpRequest("POST", url, headers, line, this._o.requestTimeout, (herr, status, body) => {
        if (herr)
          return done(new SwitchboardError(herr.code, "POST /send failed: " + herr.message + " (the request may or may not have taken effect)"));
        const reply = isArray(body) ? body[0] : body;
        if (reply && reply.type === "error") {
          const d = reply.data || {};
          return done(new SwitchboardError(d.code || "http_" + status, d.message || "request failed", reply));
        }
        if (reply && reply.error)
          return done(new SwitchboardError(reply.error.code || "http_" + status, reply.error.message || "request failed"));
        if ((status < 200 || status > 299) && status !== 202)
          return done(new SwitchboardError("http_" + status, "POST /send answered " + status));
        done(null, reply && reply.data !== undefined ? reply.data : {});
      });
    });
  }
  _failPending(err, conn) {
    for (const ref in this._pending) {
      if (!has(this._pending, ref))
        continue;
      const p = this._pending[ref];
      if (conn && p.conn !== conn)
        continue;
      delete this._pending[ref];
      clearTimeout(p.timer);
      p.done(err);
    }
  }
  _failWaiters(err) {
    const waiters = this._waiters;
    this._waiters = [];
    for (let i = 0; i < waiters.length; i++) {
      clearTimeout(waiters[i].timer);
      waiters[i].done(err);
    }
  }
}
function openWebSocket(client, conn, params, cb) {
  if (typeof WebSocket !== "function" && typeof WebSocket !== "object")
    throw new Error("WebSocket is not available in this browser");
  const url = endpoint(client._base, "ws", { rooms: params.rooms, since: params.since, user: params.user }, true);
  const ws = params.token ? new WebSocket(url, ["switchboard.v1", "switchboard.token." + params.token]) : new WebSocket(url);
  let pingTimer;
  conn.via = "websocket";
  conn.lastSeen = Date.now();
  conn.send = (s) => {
    if (ws.readyState !== 1)
      throw new Error("socket not open");
    ws.send(s);
  };
  conn.stop = () => {
    clearInterval(pingTimer);
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(1000);
    }
    catch (e) {
    }
  };
  ws.onmessage = (ev) => {
    conn.lastSeen = Date.now();
    if (typeof ev.data !== "string")
      return;
    const lines = ev.data.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (!conn.closed)
        onEnvelope(conn, cb, lines[i]);
    }
  };
  ws.onclose = (ev) => {
    clearInterval(pingTimer);
    const code = ev.code || 1006;
    cb.close({ code, reason: ev.reason || (code === 1006 ? "connection failed or dropped" : ""), reconnect: code !== 4001 && code !== 1000 });
  };
  const every = client._o.pingInterval;
  const wait = client._o.requestTimeout;
  if (every > 0) {
    const tick = Math.max(100, Math.floor(Math.min(every, wait) / 4));
    let pingAt = 0;
    pingTimer = setInterval(() => {
      const now = Date.now();
      if (pingAt && conn.lastSeen >= pingAt)
        pingAt = 0;
      if (pingAt) {
        if (now - pingAt >= wait) {
          conn.stop();
          cb.close({ code: 4009, reason: "no traffic from the server", reconnect: true });
        }
      }
      else if (now - conn.lastSeen >= every - tick && ws.readyState === 1) {
        ws.send(JSON.stringify({ v: 1, type: "ping", ref: "p" + ++client._ref }));
        pingAt = now;
      }
    }, tick);
  }
}
function openStream(client, conn, params, cb) {
  if (typeof EventSource === "function" || typeof EventSource === "object") {
    openEventSource(client, conn, params, cb);
    return;
  }
  if (typeof XMLHttpRequest === "undefined")
    throw new Error("neither EventSource nor XMLHttpRequest is available in this browser");
  conn.via = "xhr";
  const xhr = new XMLHttpRequest();
  xhr.open("GET", endpoint(client._base, "sse", { rooms: params.rooms, since: params.since, user: params.user }), true);
  if (params.token)
    xhr.setRequestHeader("Authorization", "Bearer " + params.token);
  let seen = 0;
  let buf = "";
  let event = "";
  let data = [];
  let ended = false;
  conn.stop = () => {
    ended = true;
    xhr.onreadystatechange = noop;
    xhr.onprogress = null;
    try {
      xhr.abort();
    }
    catch (e) {
    }
  };
  const read = () => {
    if (ended || xhr.readyState < 3 || xhr.status !== 200)
      return;
    let text;
    try {
      text = xhr.responseText;
    }
    catch (e) {
      return;
    }
    if (text.length <= seen)
      return;
    buf += text.substring(seen);
    seen = text.length;
    conn.lastSeen = Date.now();
    let i;
    while (!conn.closed && (i = buf.indexOf("\n")) >= 0) {
      let line = buf.substring(0, i);
      buf = buf.substring(i + 1);
      if (line.charAt(line.length - 1) === "\r")
        line = line.substring(0, line.length - 1);
      if (line === "") {
        if (data.length)
          onStreamEvent(conn, cb, event || "message", data.join("\n"));
        event = "";
        data = [];
        continue;
      }
      const c = line.indexOf(":");
      if (c === 0)
        continue;
      const field = c < 0 ? line : line.substring(0, c);
      let value = c < 0 ? "" : line.substring(c + 1);
      if (value.charAt(0) === " ")
        value = value.substring(1);
      if (field === "data")
        data.push(value);
      else if (field === "event")
        event = value;
    }
    if (!conn.closed && conn.opened && seen > XHR_STREAM_MAX && !buf && !data.length && client._conn === conn)
      client._restart();
  };
  xhr.onreadystatechange = () => {
    read();
    if (ended || conn.closed || xhr.readyState !== 4)
      return;
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
function openEventSource(client, conn, params, cb) {
  conn.via = "eventsource";
  const es = new EventSource(endpoint(client._base, "sse", params));
  conn.stop = () => es.close();
  es.onmessage = (ev) => onStreamEvent(conn, cb, "message", ev.data);
  es.addEventListener("close", (ev) => onStreamEvent(conn, cb, "close", ev.data));
  es.onerror = () => {
    es.close();
    cb.close({ code: 1006, reason: conn.opened ? "stream dropped" : "stream failed (refused, unauthorized or blocked)", reconnect: true });
  };
}
function onStreamEvent(conn, cb, event, data) {
  if (event === "message") {
    onEnvelope(conn, cb, data);
    return;
  }
  if (event !== "close")
    return;
  let d = {};
  try {
    d = JSON.parse(data) || {};
  }
  catch (e) {
  }
  if (conn.stop)
    conn.stop();
  cb.close({ code: d.code || 1006, reason: d.reason || "", reconnect: d.reconnect !== false });
}
function onEnvelope(conn, cb, text) {
  if (!text || !/\S/.test(text))
    return;
  let env;
  try {
    env = JSON.parse(text);
  }
  catch (e) {
    return;
  }
  if (!env)
    return;
  if (env.type === "welcome" && !conn.opened) {
    cb.open((env.data || {}));
    return;
  }
  cb.envelope(env);
}
function openLongPoll(client, conn, params, cb) {
  if (httpVia() === "")
    throw new Error("neither fetch nor XMLHttpRequest is available in this browser");
  conn.via = httpVia();
  let abort = null;
  conn.stop = () => {
    if (abort)
      abort();
  };
  let cursor = params.since || "";
  let token = params.token;
  let first = true;
  const poll = () => {
    if (conn.closed)
      return;
    const wait = first ? 0 : client._o.pollWait;
    const url = endpoint(client._base, "poll", { rooms: params.rooms, cursor, wait: String(wait), user: params.user });
    const headers = token ? { Authorization: "Bearer " + token } : {};
    abort = httpRequest("GET", url, headers, null, (wait + 15) * 1000, (err, status, body) => {
      abort = null;
      if (conn.closed)
        return;
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
        const errors = body.errors || [];
        for (let i = 0; i < errors.length; i++)
          cb.envelope(errors[i]);
      }
      else if (body.recovered === false) {
        client._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
      }
      first = false;
      const messages = body.messages || [];
      for (let i = 0; i < messages.length; i++)
        cb.envelope(messages[i]);
      if (conn.closed || client._conn !== conn)
        return;
      cursor = body.cursor || "";
      if (!messages.length)
        client._since = cursor;
      if (typeof client._o.token !== "function")
        return poll();
      client._token((terr, t) => {
        if (conn.closed)
          return;
        if (terr)
          return cb.close({ code: 4001, reason: terr.message });
        token = t;
        poll();
      });
    });
  };
  poll();
}
function httpClose(status, message, what) {
  const code = status === 401 ? 4001 : status === 503 ? 1012 : status ? 1011 : 1006;
  return { code, reason: message || (status ? what + " answered " + status : what + " failed (unreachable, refused or blocked)"), reconnect: status !== 400 };
}
function errorBody(text) {
  try {
    const b = JSON.parse(text);
    return (b && b.error && b.error.message) || "";
  }
  catch (e) {
    return "";
  }
}
function httpVia() {
  if (typeof fetch === "function" && typeof Promise === "function")
    return "fetch";
  return typeof XMLHttpRequest === "undefined" ? "" : "xhr";
}
function httpRequest(method, url, headers, body, timeout, done) {
  let finished = false;
  let cancel = noop;
  const finish = (err, status, text) => {
    if (finished)
      return;
    finished = true;
    clearTimeout(timer);
    if (err)
      return done(err, status, undefined);
    let parsed;
    if (text) {
      try {
        parsed = JSON.parse(text);
      }
      catch (e) {
        if (status >= 200 && status < 300)
          return done({ code: "network", message: "the answer is not JSON" }, status, undefined);
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
      if (ctl)
        ctl.abort();
    };
    fetch(url, { method, body, headers, signal: ctl ? ctl.signal : undefined, cache: "no-store" })
      .then((res) => res.text().then((text) => ({ status: res.status, text })))
      .then((r) => finish(null, r.status, r.text), (e) => finish({ code: "network", message: errText(e) }, 0, ""));
  }
  else if (typeof XMLHttpRequest === "undefined") {
    finish({ code: "network", message: "neither fetch nor XMLHttpRequest is available" }, 0, "");
  }
  else {
    const xhr = new XMLHttpRequest();
    cancel = () => {
      xhr.onreadystatechange = noop;
      try {
        xhr.abort();
      }
      catch (e) {
      }
    };
    try {
      xhr.open(method, url, true);
      for (const k in headers)
        if (has(headers, k))
          xhr.setRequestHeader(k, headers[k]);
      xhr.onreadystatechange = () => {
        if (xhr.readyState !== 4)
          return;
        if (xhr.status)
          finish(null, xhr.status, xhr.responseText);
        else
          finish({ code: "network", message: "no answer (unreachable, refused or blocked)" }, 0, "");
      };
      xhr.send(body);
    }
    catch (e) {
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
function settle(callback, start) {
  if (typeof callback === "function") {
    let sync = true;
    let called = false;
    start((err, v) => {
      if (called)
        return;
      called = true;
      if (sync)
        setTimeout(() => callback(err, v), 0);
      else
        callback(err, v);
    });
    sync = false;
    return;
  }
  if (typeof Promise !== "function") {
    start(noop);
    return;
  }
  return new Promise((resolve, reject) => start((err, v) => (err ? reject(err) : resolve(v))));
}
function defer(fn) {
  if (typeof Promise === "function")
    Promise.resolve().then(fn);
  else
    setTimeout(fn, 0);
}
function inherit(o, p) {
  if (Object.getPrototypeOf(o) === p)
    return;
  const set = Object.setPrototypeOf;
  if (set)
    set(o, p);
  else
    o.__proto__ = p;
}
function noop() { }
function has(o, k) {
  return Object.prototype.hasOwnProperty.call(o, k);
}
function extend(target, src) {
  if (src)
    for (const k in src)
      if (has(src, k))
        target[k] = src[k];
  return target;
}
function indexOf(list, x) {
  for (let i = 0; i < list.length; i++)
    if (list[i] === x)
      return i;
  return -1;
}
function addTo(list, x) {
  if (indexOf(list, x) < 0)
    list.push(x);
}
function removeFrom(list, x) {
  const i = indexOf(list, x);
  if (i >= 0)
    list.splice(i, 1);
}
function isArray(x) {
  return Object.prototype.toString.call(x) === "[object Array]";
}
function errText(e) {
  return String((e && e.message) || e);
}
function baseURL(url) {
  const here = typeof location !== "undefined" ? location.href : "http://localhost/";
  const page = /^([a-z][a-z0-9+.\-]*:)\/\/([^\/?#]*)([^?#]*)/i.exec(here) || ["", "http:", "localhost", "/"];
  let u = (url || "/").replace(/[?#].*$/, "");
  if (/^\/\//.test(u))
    u = page[1] + u;
  else if (/^\//.test(u))
    u = page[1] + "//" + page[2] + u;
  else if (!/^[a-z][a-z0-9+.\-]*:/i.test(u))
    u = page[1] + "//" + page[2] + page[3].replace(/[^\/]*$/, "") + u;
  const m = /^([a-z][a-z0-9+.\-]*):\/\/([^\/]*)(.*)$/i.exec(u);
  if (!m)
    throw new TypeError("switchboard: not a URL: " + url);
  const scheme = m[1].toLowerCase() === "wss" || m[1].toLowerCase() === "https" ? "https" : "http";
  let path = m[3] || "/";
  if (path.charAt(path.length - 1) !== "/")
    path += "/";
  return { href: scheme + "://" + m[2] + path, host: m[2] };
}
function endpoint(base, path, params, ws) {
  let u = base.href + path;
  let sep = "?";
  for (const k in params) {
    const v = params[k];
    if (!has(params, k) || v === undefined || v === null || v === "")
      continue;
    u += sep + encodeURIComponent(k) + "=" + encodeURIComponent(v);
    sep = "&";
  }
  return ws ? u.replace(/^http/, "ws") : u;
}
function nameError(what, s) {
  if (typeof s === "string" && NAME_RE.test(s))
    return null;
  return new SwitchboardError(what === "room" ? "invalid_room" : "invalid_user", what + " must be 1-128 characters of letters, digits and _ - . : @ / = (got " + JSON.stringify(s) + ")");
}
function closedError() {
  return new SwitchboardError("closed", "the client is closed");
}
export { connect, Client, SwitchboardError };
