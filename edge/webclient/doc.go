// Package webclient owns the browser client library and serves it: the
// ES module at /client.js, a classic-script build at /client.global.js
// (it defines window.Switchboard), an ES5 classic-script build for old
// engines at /client.legacy.js (window.Switchboard too) and the
// TypeScript declarations at /client.d.ts. docs/client.md documents the
// API and the engines each build needs.
//
// One source, client.ts, makes all of them. make client compiles it with
// the TypeScript pinned in _build/package.json (5.9: TypeScript 7, the
// tsc on the PATH, removed the ES5 target) into client.js, client.d.ts
// and client.legacy.js, which are committed and embedded, so building
// the Go code never needs Node; the classic build is client.js wrapped
// at start. TestGeneratedUpToDate fails when the committed files differ
// from what client.ts compiles to. Serving is read-only: safe for
// concurrent use.
package webclient
