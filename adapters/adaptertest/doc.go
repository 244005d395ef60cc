// Package adaptertest is the conformance suite for transport adapters:
// anything that turns connections into core sessions with Node.Accept.
// Every adapter calls it from its own _test.go with a Harness that mounts
// the adapter on the node the suite gives it and dials it with a client
// for that transport:
//
//	func TestConformance(t *testing.T) {
//		adaptertest.Run(t, adaptertest.Harness{
//			Features: adaptertest.Features{ServerPings: true, CloseCodes: true},
//			Start: func(t *testing.T, srv adaptertest.Server) adaptertest.Dialer {
//				addr := serveMyAdapter(t, srv.Node) // 127.0.0.1:0
//				return func(t *testing.T, o adaptertest.ConnectOpts) (adaptertest.Client, error) {
//					return dialMyAdapter(addr, o)
//				}
//			},
//		})
//	}
//
// Each subtest builds a node of its own (memory broker, a core.Config the
// subtest chooses, the suite's Authenticator) and runs in parallel. The
// Auth subtests prove that the adapter hands the client's credentials to
// the node and decides nothing itself: a token's rooms, expiry and
// refresh, metadata and the anonymous rules all hold through it. Features state honest differences
// between transports and change what the suite asserts; nothing is
// skipped. Everything waits by signal (the next envelope, a close) except
// server-side cleanup, which has no signal and is polled with a deadline.
// Assertions run on the test goroutine only; a Client's own goroutines
// must report errors through Next and Closed, never through t.
package adaptertest
