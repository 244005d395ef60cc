// Package test holds Switchboard's black-box end-to-end tests: a real edge
// (edge/server) started in-process on 127.0.0.1:0, or the built binary,
// driven by real WebSocket clients. Helpers live in helpers_test.go.
package test
