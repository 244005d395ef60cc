package longpoll_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/switchboard-dev/switchboard/adapters/longpoll"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// BenchmarkPollCatchUp: one long-poll client 20,000 messages behind on
// Redis (through the engine; a resume index of 5,000, so the first pages
// come from the log and the last from the index) catches up with GET
// /poll, one default page of 100 at a time. msgs/s is the catch-up rate;
// a poll's cost follows its page, so it does not fall with the lag.
func BenchmarkPollCatchUp(b *testing.B) {
	const behind = 20_000
	srv := redistest.Start(b)
	l, _ := startRedis(b, srv, sbredis.Config{Engine: engine.Config{IndexEntries: 5000}}, core.Config{}, longpoll.Config{})
	seed := publishAll(b, l.node, "seed", 1)[0] // the client's cursor
	publishAll(b, l.node, "r", behind)
	ctx := context.Background()
	polls := 0
	for b.Loop() {
		cursor, got := seed, 0
		for got < behind {
			a, err := getPoll(ctx, l.hc, l.base, query("user", "u", "rooms", "r", "cursor", cursor, "wait", "0"), "")
			if err != nil || a.status != http.StatusOK || !a.Recovered || len(a.Messages) == 0 {
				b.Fatalf("poll at %d of %d: %v %d %s", got, behind, err, a.status, a.body)
			}
			got += len(a.Messages)
			cursor = a.Cursor
			polls++
		}
	}
	b.ReportMetric(float64(behind)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(polls)/float64(b.N), "polls/op")
}
