// Package webclient owns the browser client library and serves it: the
// ES module at /client.js, a classic-script build at /client.global.js
// (it defines window.Switchboard) and the TypeScript declarations at
// /client.d.ts. The classic build is derived from the module at start, so
// there is one source and no bundler. docs/client.md documents the API.
package webclient
