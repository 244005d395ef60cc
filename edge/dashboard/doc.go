// Package dashboard serves the live operations page at /dashboard (on the
// admin listener when there is one): connections per transport and node,
// message rates over the last minutes, the busiest rooms, slow consumers,
// send queues, broker health and lag, and recent warnings.
//
// Every node samples itself each second and publishes the sample on the
// broker channel "dashboard", so the page on any node shows all of them.
// The page is fed the way any Switchboard client is: it uses the browser
// client (client.js) over the SSE adapter, subscribed to a room of a small
// core.Node the dashboard runs for its viewers. It needs no bundler; the
// charts are inline SVG drawn by the page itself.
package dashboard
