// Package brokertest is the conformance suite for implementations of
// core.Broker. Every driver calls it from its own _test.go:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, brokertest.Features{HistorySize: 100, GlobalOrder: true},
//			func(t *testing.T) core.Broker { return newDriver(t) })
//	}
//
// The factory returns a fresh, unstarted broker; the suite starts it and
// closes it. Each subtest runs in parallel on
// its own channels, so brokers that share a server across subtests and
// runs stay independent. Features state honest capability differences and
// change what the suite asserts; nothing is skipped. Publish may return
// before its delivery callback has run, so the suite waits for deliveries
// by signal (a marker publication), never by sleeping. Assertions run on
// the test goroutine: goroutines the suite starts send their errors back.
//
// A driver whose backend can go away sets Features.Outage: it returns a
// Backend of the subtest's own (a server, a cluster) with its factory and
// Stop and Start, and the Outage subtest takes two nodes on it through an
// outage and a recovery:
//
//	Outage: func(t *testing.T) brokertest.Backend {
//		srv := drivertest.Start(t)
//		return brokertest.Backend{
//			NewBroker: func(t *testing.T) core.Broker { return newDriver(t, srv.URL) },
//			Stop:      srv.Stop,
//			Start:     srv.Restart,
//			KeepsData: true, // the restarted server has the messages
//		}
//	},
//
// Health has no signal, so that subtest polls Healthy against deadlines;
// everything else still waits by signal.
package brokertest
