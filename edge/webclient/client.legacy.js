// Code generated from client.ts by make client (edge/webclient/_build/build.mjs, TypeScript 5.9.3). DO NOT EDIT.
// The ES5 classic-script build: defines window.Switchboard. Source and docs: /client.js, docs/client.md.
(function (global) {
"use strict";
var __extends = (this && this.__extends) || (function () {
var extendStatics = function (d, b) {
extendStatics = Object.setPrototypeOf ||
({ __proto__: [] } instanceof Array && function (d, b) { d.__proto__ = b; }) ||
function (d, b) { for (var p in b) if (Object.prototype.hasOwnProperty.call(b, p)) d[p] = b[p]; };
return extendStatics(d, b);
};
return function (d, b) {
if (typeof b !== "function" && b !== null)
throw new TypeError("Class extends value " + String(b) + " is not a constructor or null");
extendStatics(d, b);
function __() { this.constructor = d; }
d.prototype = b === null ? Object.create(b) : (__.prototype = b.prototype, new __());
};
})();
var TRANSPORTS = ["websocket", "sse", "longpoll"];
var NAME_RE = /^[A-Za-z0-9_\-.:@/=]{1,128}$/;
var SEEN = 1024;
var STORAGE_KEY = "switchboard:transport:";
var XHR_STREAM_MAX = 256 * 1024;
var defaults = {
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
var SwitchboardError = (function (_super) {
__extends(SwitchboardError, _super);
function SwitchboardError(code, message, envelope) {
var _this = _super.call(this, message) || this;
inherit(_this, SwitchboardError.prototype);
_this.name = "SwitchboardError";
_this.code = code;
_this.envelope = envelope;
return _this;
}
return SwitchboardError;
}(Error));
function connect(url, options) {
return new Client(url, options);
}
var Client = (function () {
function Client(url, options) {
var _this = this;
var o = extend(extend({}, defaults), options);
o.backoff = extend(extend({}, defaults.backoff), options && options.backoff);
for (var i = 0; i < o.transports.length; i++) {
var t = o.transports[i];
if (indexOf(TRANSPORTS, t) < 0)
throw new TypeError('switchboard: unknown transport "' + t + '" (use ' + TRANSPORTS.join(", ") + ")");
}
if (!o.transports.length)
throw new TypeError("switchboard: transports is empty");
for (var i = 0; i < o.rooms.length; i++) {
var err = nameError("room", o.rooms[i]);
if (err)
throw err;
}
this._o = o;
this._base = baseURL(url);
this._rooms = [];
for (var i = 0; i < o.rooms.length; i++)
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
this._online = function () {
if (_this._state === "reconnecting")
_this._retryNow();
};
addEventListener("online", this._online);
}
if (o.autoConnect)
defer(function () { return _this.connect(); });
}
Object.defineProperty(Client.prototype, "state", {
get: function () {
return this._state;
},
enumerable: false,
configurable: true
});
Object.defineProperty(Client.prototype, "transport", {
get: function () {
return this._transport;
},
enumerable: false,
configurable: true
});
Object.defineProperty(Client.prototype, "via", {
get: function () {
return this._conn ? this._conn.via : "";
},
enumerable: false,
configurable: true
});
Object.defineProperty(Client.prototype, "user", {
get: function () {
return this._user;
},
enumerable: false,
configurable: true
});
Object.defineProperty(Client.prototype, "lastId", {
get: function () {
return this._since;
},
enumerable: false,
configurable: true
});
Object.defineProperty(Client.prototype, "rooms", {
get: function () {
return this._rooms.slice();
},
enumerable: false,
configurable: true
});
Client.prototype.connect = function () {
if (this._state !== "idle")
return this;
this._attempt();
return this;
};
Client.prototype.on = function (type, fn) {
var _this = this;
var list = this._handlers[type] || (this._handlers[type] = []);
addTo(list, fn);
return function () { return _this.off(type, fn); };
};
Client.prototype.off = function (type, fn) {
var list = this._handlers[type];
if (list)
removeFrom(list, fn);
};
Client.prototype.join = function (room, callback) {
var _this = this;
return settle(callback, function (done) {
var bad = nameError("room", room);
if (bad)
return done(bad);
if (_this._state === "closed")
return done(closedError());
if (indexOf(_this._rooms, room) >= 0)
return done(null, { room: room });
addTo(_this._rooms, room);
if (_this._isOpen("websocket")) {
_this._request({ type: "join", room: room }, true, function (err, ack) {
if (err && err.code !== "disconnected")
removeFrom(_this._rooms, room);
done(err, ack);
});
return;
}
_this._applyRooms(room, done);
});
};
Client.prototype.leave = function (room, callback) {
var _this = this;
return settle(callback, function (done) {
var bad = nameError("room", room);
if (bad)
return done(bad);
if (indexOf(_this._rooms, room) < 0)
return done(null, { room: room });
removeFrom(_this._rooms, room);
if (_this._isOpen("websocket"))
_this._request({ type: "leave", room: room }, true, done);
else
_this._applyRooms(room, done);
});
};
Client.prototype._applyRooms = function (room, done) {
if (this._state === "connecting" || this._state === "open") {
this._reopen(function (err) { return done(err, err ? undefined : { room: room }); });
}
else
done(null, { room: room });
};
Client.prototype.publish = function (room, data, callback) {
var _this = this;
return settle(callback, function (done) {
var bad = nameError("room", room);
if (bad)
done(bad);
else
_this._request({ type: "publish", room: room, data: data }, true, done);
});
};
Client.prototype.direct = function (to, data, callback) {
var _this = this;
return settle(callback, function (done) {
var bad = nameError("user", to);
if (bad)
done(bad);
else
_this._request({ type: "direct", to: to, data: data }, true, done);
});
};
Client.prototype.send = function (envelope, opts, callback) {
var _this = this;
var reply = !opts || opts.reply !== false;
return settle(callback, function (done) { return _this._request(extend({}, envelope), reply, done); });
};
Client.prototype.close = function () {
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
};
Client.prototype._transportOrder = function () {
var order = this._o.transports.slice();
var i = indexOf(order, this._recall());
if (i > 0)
order.unshift(order.splice(i, 1)[0]);
return order;
};
Client.prototype._recall = function () {
if (!this._o.remember)
return "";
try {
return sessionStorage.getItem(STORAGE_KEY + this._base.host) || "";
}
catch (e) {
return "";
}
};
Client.prototype._remember = function (t) {
if (!this._o.remember)
return;
try {
sessionStorage.setItem(STORAGE_KEY + this._base.host, t);
}
catch (e) {
}
};
Client.prototype._isOpen = function (t) {
return this._state === "open" && !!this._conn && this._conn.name === t;
};
Client.prototype._attempt = function () {
var _this = this;
this._timer = undefined;
if (this._state === "closed")
return;
var gen = ++this._gen;
var name = this._order[this._idx];
this._transport = name;
this._setState("connecting", { transport: name });
this._token(function (err, token) {
if (gen !== _this._gen || _this._state === "closed")
return;
if (err) {
_this._schedule(_this._delay(_this._fails++), { code: 4001, reason: err.message });
return;
}
_this._open(name, { rooms: _this._rooms.join(","), since: _this._since, token: token, user: _this._o.user });
});
};
Client.prototype._open = function (name, params) {
var _this = this;
var conn = { name: name, via: name === "websocket" ? "websocket" : "xhr", opened: false, openedAt: 0, closed: false, lastSeen: 0 };
this._conn = conn;
var cb = {
open: function (welcome) { return _this._onOpen(conn, welcome); },
envelope: function (env) {
if (_this._conn === conn && !conn.closed)
_this._dispatch(env);
},
close: function (info) { return _this._onClose(conn, info); },
};
conn.openTimer = setTimeout(function () {
if (!conn.opened && !conn.closed)
_this._onClose(conn, { code: 1006, reason: "no answer within " + _this._o.connectTimeout + " ms" });
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
};
Client.prototype._token = function (done) {
var t = this._o.token;
if (typeof t !== "function")
return done(null, t);
var ms = this._o.connectTimeout;
var finished = false;
var timer;
var finish = function (err, token) {
if (finished)
return;
finished = true;
clearTimeout(timer);
done(err, token);
};
var fail = function (e) { return finish(new SwitchboardError("token", "token callback failed: " + errText(e))); };
try {
var v = t(function (e, x) { return (e ? fail(e) : finish(null, x)); });
if (v && typeof v.then === "function")
v.then(function (x) { return finish(null, x); }, fail);
else if (v !== undefined)
finish(null, v);
}
catch (e) {
if (finished)
throw e;
fail(e);
}
if (!finished)
timer = setTimeout(function () { return finish(new SwitchboardError("token", "token callback gave no token within " + ms + " ms")); }, ms);
};
Client.prototype._onOpen = function (conn, welcome) {
if (this._conn !== conn || conn.closed || conn.opened)
return;
conn.opened = true;
conn.openedAt = Date.now();
clearTimeout(conn.openTimer);
this._tFails = 0;
this._opened[conn.name] = true;
var pref = this._o.transports;
var better = false;
for (var i = 0; i < indexOf(pref, conn.name); i++)
better = better || !!this._opened[pref[i]];
if (!better)
this._remember(conn.name);
if (welcome.user)
this._user = welcome.user;
var recovered = welcome.recovered;
this._setState("open", { transport: conn.name, via: conn.via, recovered: recovered, rooms: welcome.rooms });
if (recovered === false)
this._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
this._scheduleRefresh(welcome.expires);
var waiters = this._waiters;
this._waiters = [];
for (var i = 0; i < waiters.length; i++) {
clearTimeout(waiters[i].timer);
waiters[i].done(null);
}
};
Client.prototype._scheduleRefresh = function (expires) {
var _this = this;
clearTimeout(this._refreshTimer);
if (!expires || typeof this._o.token !== "function")
return;
var left = expires * 1000 - Date.now();
var at = Math.max(1000, Math.min(left - 30000, left * 0.8));
var failed = function (e) {
_this._emit("error", { v: 1, type: "error", data: { code: e.code || "token", message: "token refresh failed: " + e.message } });
};
this._refreshTimer = setTimeout(function () {
var conn = _this._conn;
if (_this._state !== "open" || !conn)
return;
if (conn.name === "sse")
return _this._reopen(noop);
if (conn.name !== "websocket")
return;
_this._token(function (err, token) {
if (err)
return failed(err);
_this._request({ type: "refresh", data: { token: token } }, true, function (err2, d) {
if (err2)
failed(err2);
else
_this._scheduleRefresh(d && d.expires);
});
});
}, at);
};
Client.prototype._onClose = function (conn, info) {
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
var refreshable = typeof this._o.token === "function";
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
var pref = this._o.transports;
for (var i = 0; i < pref.length; i++) {
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
};
Client.prototype._failed = function (info) {
this._fails++;
this._tFails++;
var name = this._order[this._idx];
var limit = this._opened[name] ? 3 : 1;
if (this._tFails >= limit && this._order.length > 1) {
var next = (this._idx + 1) % this._order.length;
this._tFails = 0;
this._emit("fallback", { from: name, to: this._order[next], reason: info.reason, code: info.code });
this._idx = next;
if (next !== 0) {
this._schedule(0, info);
return;
}
}
this._schedule(this._delay(this._fails - 1), info);
};
Client.prototype._delay = function (n) {
var b = this._o.backoff;
var cap = Math.min(b.max, b.initial * Math.pow(b.factor, Math.min(n, 30)));
return Math.floor(Math.random() * cap);
};
Client.prototype._schedule = function (ms, info) {
var _this = this;
this._gen++;
this._setState("reconnecting", { transport: this._order[this._idx], delay: ms, code: info.code, reason: info.reason });
clearTimeout(this._timer);
this._timer = setTimeout(function () { return _this._attempt(); }, ms);
};
Client.prototype._retryNow = function () {
clearTimeout(this._timer);
this._attempt();
};
Client.prototype._reopen = function (done) {
var _this = this;
var w = {
done: done,
timer: setTimeout(function () {
removeFrom(_this._waiters, w);
done(new SwitchboardError("timeout", "not connected yet; the room list is kept for the next connection"));
}, this._o.connectTimeout + this._o.requestTimeout),
};
this._waiters.push(w);
this._restart();
};
Client.prototype._restart = function () {
var conn = this._conn;
this._conn = null;
this._drop(conn);
clearTimeout(this._timer);
this._attempt();
};
Client.prototype._drop = function (conn) {
if (!conn)
return;
conn.closed = true;
clearTimeout(conn.openTimer);
if (conn.stop)
conn.stop();
};
Client.prototype._setState = function (state, detail) {
this._state = state;
var d = extend({ state: state, transport: this._transport }, detail);
this._emit(state, d);
this._emit("state", d);
};
Client.prototype._emit = function (type, arg) {
var list = this._handlers[type];
if (!list)
return;
var fns = list.slice();
for (var i = 0; i < fns.length; i++) {
try {
fns[i](arg);
}
catch (e) {
setTimeout(function () {
throw e;
}, 0);
}
}
};
Client.prototype._dispatch = function (env) {
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
var p = this._pending[env.ref];
if (p) {
delete this._pending[env.ref];
clearTimeout(p.timer);
if (env.type === "error") {
var d = (env.data || {});
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
};
Client.prototype._request = function (fields, wantReply, done) {
var _this = this;
if (this._state === "closed")
return done(closedError());
var env = extend({ v: 1 }, fields);
var ref = wantReply ? "c" + ++this._ref : "";
if (ref)
env.ref = ref;
var line;
try {
line = JSON.stringify(env);
}
catch (e) {
return done(new SwitchboardError("bad_request", "the envelope is not JSON: " + errText(e)));
}
var conn = this._conn;
if (!conn || !this._isOpen("websocket"))
return this._post(line, done);
if (ref) {
var timer = setTimeout(function () {
delete _this._pending[ref];
done(new SwitchboardError("timeout", "no reply within " + _this._o.requestTimeout + " ms"));
}, this._o.requestTimeout);
this._pending[ref] = { done: done, timer: timer, conn: conn };
}
try {
conn.send(line);
}
catch (e) {
var p = ref ? this._pending[ref] : undefined;
if (p) {
clearTimeout(p.timer);
delete this._pending[ref];
}
return done(new SwitchboardError("disconnected", errText(e)));
}
if (!ref)
done(null, {});
};
Client.prototype._post = function (line, done) {
var _this = this;
this._token(function (err, token) {
if (err)
return done(err);
var url = endpoint(_this._base, "send", { user: _this._o.user || _this._user, rooms: _this._rooms.join(",") });
var headers = { "Content-Type": "application/json" };
if (token)
headers.Authorization = "Bearer " + token;
httpRequest("POST", url, headers, line, _this._o.requestTimeout, function (herr, status, body) {
if (herr)
return done(new SwitchboardError(herr.code, "POST /send failed: " + herr.message + " (the request may or may not have taken effect)"));
var reply = isArray(body) ? body[0] : body;
if (reply && reply.type === "error") {
var d = reply.data || {};
return done(new SwitchboardError(d.code || "http_" + status, d.message || "request failed", reply));
}
if (reply && reply.error)
return done(new SwitchboardError(reply.error.code || "http_" + status, reply.error.message || "request failed"));
if ((status < 200 || status > 299) && status !== 202)
return done(new SwitchboardError("http_" + status, "POST /send answered " + status));
done(null, reply && reply.data !== undefined ? reply.data : {});
});
});
};
Client.prototype._failPending = function (err, conn) {
for (var ref in this._pending) {
if (!has(this._pending, ref))
continue;
var p = this._pending[ref];
if (conn && p.conn !== conn)
continue;
delete this._pending[ref];
clearTimeout(p.timer);
p.done(err);
}
};
Client.prototype._failWaiters = function (err) {
var waiters = this._waiters;
this._waiters = [];
for (var i = 0; i < waiters.length; i++) {
clearTimeout(waiters[i].timer);
waiters[i].done(err);
}
};
return Client;
}());
function openWebSocket(client, conn, params, cb) {
if (typeof WebSocket !== "function" && typeof WebSocket !== "object")
throw new Error("WebSocket is not available in this browser");
var url = endpoint(client._base, "ws", { rooms: params.rooms, since: params.since, user: params.user }, true);
var ws = params.token ? new WebSocket(url, ["switchboard.v1", "switchboard.token." + params.token]) : new WebSocket(url);
var pingTimer;
conn.via = "websocket";
conn.lastSeen = Date.now();
conn.send = function (s) {
if (ws.readyState !== 1)
throw new Error("socket not open");
ws.send(s);
};
conn.stop = function () {
clearInterval(pingTimer);
ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
try {
ws.close(1000);
}
catch (e) {
}
};
ws.onmessage = function (ev) {
conn.lastSeen = Date.now();
if (typeof ev.data !== "string")
return;
var lines = ev.data.split("\n");
for (var i = 0; i < lines.length; i++) {
if (!conn.closed)
onEnvelope(conn, cb, lines[i]);
}
};
ws.onclose = function (ev) {
clearInterval(pingTimer);
var code = ev.code || 1006;
cb.close({ code: code, reason: ev.reason || (code === 1006 ? "connection failed or dropped" : ""), reconnect: code !== 4001 && code !== 1000 });
};
var every = client._o.pingInterval;
var wait = client._o.requestTimeout;
if (every > 0) {
var tick_1 = Math.max(100, Math.floor(Math.min(every, wait) / 4));
var pingAt_1 = 0;
pingTimer = setInterval(function () {
var now = Date.now();
if (pingAt_1 && conn.lastSeen >= pingAt_1)
pingAt_1 = 0;
if (pingAt_1) {
if (now - pingAt_1 >= wait) {
conn.stop();
cb.close({ code: 4009, reason: "no traffic from the server", reconnect: true });
}
}
else if (now - conn.lastSeen >= every - tick_1 && ws.readyState === 1) {
ws.send(JSON.stringify({ v: 1, type: "ping", ref: "p" + ++client._ref }));
pingAt_1 = now;
}
}, tick_1);
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
var xhr = new XMLHttpRequest();
xhr.open("GET", endpoint(client._base, "sse", { rooms: params.rooms, since: params.since, user: params.user }), true);
if (params.token)
xhr.setRequestHeader("Authorization", "Bearer " + params.token);
var seen = 0;
var buf = "";
var event = "";
var data = [];
var ended = false;
conn.stop = function () {
ended = true;
xhr.onreadystatechange = noop;
xhr.onprogress = null;
try {
xhr.abort();
}
catch (e) {
}
};
var read = function () {
if (ended || xhr.readyState < 3 || xhr.status !== 200)
return;
var text;
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
var i;
while (!conn.closed && (i = buf.indexOf("\n")) >= 0) {
var line = buf.substring(0, i);
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
var c = line.indexOf(":");
if (c === 0)
continue;
var field = c < 0 ? line : line.substring(0, c);
var value = c < 0 ? "" : line.substring(c + 1);
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
xhr.onreadystatechange = function () {
read();
if (ended || conn.closed || xhr.readyState !== 4)
return;
ended = true;
var status = xhr.status;
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
var es = new EventSource(endpoint(client._base, "sse", params));
conn.stop = function () { return es.close(); };
es.onmessage = function (ev) { return onStreamEvent(conn, cb, "message", ev.data); };
es.addEventListener("close", function (ev) { return onStreamEvent(conn, cb, "close", ev.data); });
es.onerror = function () {
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
var d = {};
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
var env;
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
var abort = null;
conn.stop = function () {
if (abort)
abort();
};
var cursor = params.since || "";
var token = params.token;
var first = true;
var poll = function () {
if (conn.closed)
return;
var wait = first ? 0 : client._o.pollWait;
var url = endpoint(client._base, "poll", { rooms: params.rooms, cursor: cursor, wait: String(wait), user: params.user });
var headers = token ? { Authorization: "Bearer " + token } : {};
abort = httpRequest("GET", url, headers, null, (wait + 15) * 1000, function (err, status, body) {
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
var errors = body.errors || [];
for (var i = 0; i < errors.length; i++)
cb.envelope(errors[i]);
}
else if (body.recovered === false) {
client._emit("gap", { v: 1, type: "gap", data: { recovered: false } });
}
first = false;
var messages = body.messages || [];
for (var i = 0; i < messages.length; i++)
cb.envelope(messages[i]);
if (conn.closed || client._conn !== conn)
return;
cursor = body.cursor || "";
if (!messages.length)
client._since = cursor;
if (typeof client._o.token !== "function")
return poll();
client._token(function (terr, t) {
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
var code = status === 401 ? 4001 : status === 503 ? 1012 : status ? 1011 : 1006;
return { code: code, reason: message || (status ? what + " answered " + status : what + " failed (unreachable, refused or blocked)"), reconnect: status !== 400 };
}
function errorBody(text) {
try {
var b = JSON.parse(text);
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
var finished = false;
var cancel = noop;
var finish = function (err, status, text) {
if (finished)
return;
finished = true;
clearTimeout(timer);
if (err)
return done(err, status, undefined);
var parsed;
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
var timer = setTimeout(function () {
cancel();
finish({ code: "timeout", message: "no answer within " + timeout + " ms" }, 0, "");
}, timeout);
if (httpVia() === "fetch") {
var ctl_1 = typeof AbortController === "function" ? new AbortController() : null;
cancel = function () {
if (ctl_1)
ctl_1.abort();
};
fetch(url, { method: method, body: body, headers: headers, signal: ctl_1 ? ctl_1.signal : undefined, cache: "no-store" })
.then(function (res) { return res.text().then(function (text) { return ({ status: res.status, text: text }); }); })
.then(function (r) { return finish(null, r.status, r.text); }, function (e) { return finish({ code: "network", message: errText(e) }, 0, ""); });
}
else if (typeof XMLHttpRequest === "undefined") {
finish({ code: "network", message: "neither fetch nor XMLHttpRequest is available" }, 0, "");
}
else {
var xhr_1 = new XMLHttpRequest();
cancel = function () {
xhr_1.onreadystatechange = noop;
try {
xhr_1.abort();
}
catch (e) {
}
};
try {
xhr_1.open(method, url, true);
for (var k in headers)
if (has(headers, k))
xhr_1.setRequestHeader(k, headers[k]);
xhr_1.onreadystatechange = function () {
if (xhr_1.readyState !== 4)
return;
if (xhr_1.status)
finish(null, xhr_1.status, xhr_1.responseText);
else
finish({ code: "network", message: "no answer (unreachable, refused or blocked)" }, 0, "");
};
xhr_1.send(body);
}
catch (e) {
cancel();
setTimeout(function () { return finish({ code: "network", message: errText(e) }, 0, ""); }, 0);
}
}
return function () {
finished = true;
clearTimeout(timer);
cancel();
};
}
function settle(callback, start) {
if (typeof callback === "function") {
var sync_1 = true;
var called_1 = false;
start(function (err, v) {
if (called_1)
return;
called_1 = true;
if (sync_1)
setTimeout(function () { return callback(err, v); }, 0);
else
callback(err, v);
});
sync_1 = false;
return;
}
if (typeof Promise !== "function") {
start(noop);
return;
}
return new Promise(function (resolve, reject) { return start(function (err, v) { return (err ? reject(err) : resolve(v)); }); });
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
var set = Object.setPrototypeOf;
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
for (var k in src)
if (has(src, k))
target[k] = src[k];
return target;
}
function indexOf(list, x) {
for (var i = 0; i < list.length; i++)
if (list[i] === x)
return i;
return -1;
}
function addTo(list, x) {
if (indexOf(list, x) < 0)
list.push(x);
}
function removeFrom(list, x) {
var i = indexOf(list, x);
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
var here = typeof location !== "undefined" ? location.href : "http://localhost/";
var page = /^([a-z][a-z0-9+.\-]*:)\/\/([^\/?#]*)([^?#]*)/i.exec(here) || ["", "http:", "localhost", "/"];
var u = (url || "/").replace(/[?#].*$/, "");
if (/^\/\//.test(u))
u = page[1] + u;
else if (/^\//.test(u))
u = page[1] + "//" + page[2] + u;
else if (!/^[a-z][a-z0-9+.\-]*:/i.test(u))
u = page[1] + "//" + page[2] + page[3].replace(/[^\/]*$/, "") + u;
var m = /^([a-z][a-z0-9+.\-]*):\/\/([^\/]*)(.*)$/i.exec(u);
if (!m)
throw new TypeError("switchboard: not a URL: " + url);
var scheme = m[1].toLowerCase() === "wss" || m[1].toLowerCase() === "https" ? "https" : "http";
var path = m[3] || "/";
if (path.charAt(path.length - 1) !== "/")
path += "/";
return { href: scheme + "://" + m[2] + path, host: m[2] };
}
function endpoint(base, path, params, ws) {
var u = base.href + path;
var sep = "?";
for (var k in params) {
var v = params[k];
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
global.Switchboard = { connect: connect, Client: Client, SwitchboardError: SwitchboardError };
})(typeof window !== "undefined" ? window : this);
