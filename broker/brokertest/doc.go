// Package brokertest is the conformance suite for implementations of
// core.Broker. Every driver calls it from its own _test.go:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Features{HistorySize: 100, GlobalOrder: true},
//			func(t *testing.T) core.Broker { return newDriver(t) })
//	}
//
// The factory returns a fresh, unstarted broker; the suite starts it and
// closes it (when it is a core.Closer). Each subtest runs in parallel on
// its own channels, so brokers that share a server across subtests and
// runs stay independent. Features state honest capability differences and
// change what the suite asserts; nothing is skipped. Publish may return
// before its delivery callback has run, so the suite waits for deliveries
// by signal (a marker publication), never by sleeping. Assertions run on
// the test goroutine: goroutines the suite starts send their errors back.
package brokertest
