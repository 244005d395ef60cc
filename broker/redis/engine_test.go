package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/brokertest"
	"github.com/switchboard-dev/switchboard/broker/engine"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// TestResumeCost: a resume reads only what its own channels missed when
// its position is inside the resume index, however busy the other rooms
// were; a position older than the index reads the log only up to the
// index, and still recovers everything.
func TestResumeCost(t *testing.T) {
	srv := redistest.Start(t)
	const rooms, perRoom = 50, 8
	tests := []struct {
		name    string
		engine  engine.Config
		fromLog bool
	}{
		{"inside the index", engine.Config{}, false},
		{"older than the index", engine.Config{IndexEntries: rooms}, true},
		{"no index", engine.Config{IndexBytes: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBroker(t, sbredis.Config{URL: srv.URL, Stream: streamFor(t), Engine: tt.engine})
			brokertest.Listen(t, b)
			var since string
			var mine []*core.Envelope
			for i := range perRoom {
				for r := range rooms {
					e := publish(t, b, fmt.Sprintf("r%d", r), i)
					if r == 7 {
						if i == 0 {
							since = e.ID
						} else {
							mine = append(mine, e)
						}
					}
				}
			}
			before := b.Stats()
			res := history(t, b, since, 100, "r7")
			after := b.Stats()
			if !res.Recovered || !sameIDs(res.Envelopes, mine) {
				t.Fatalf("History = recovered %v %v, want true %v", res.Recovered, ids(res.Envelopes), ids(mine))
			}
			read := after.LogRecordsRead - before.LogRecordsRead
			switch {
			case !tt.fromLog && (read != 0 || after.HistoryFromIndex != before.HistoryFromIndex+1):
				t.Fatalf("inside the index: read %d log records (stats %+v), want 0 and one History from the index", read, after)
			case tt.fromLog && (read == 0 || after.HistoryFromLog != before.HistoryFromLog+1):
				t.Fatalf("older than the index: read %d log records (stats %+v), want some and one History from the log", read, after)
			case tt.fromLog && tt.engine.IndexEntries > 0 && read > uint64(rooms*perRoom-rooms+engine.DefaultReadCount):
				t.Fatalf("older than the index: read %d log records, want at most those before the index", read)
			}
		})
	}
}

// TestHistoryStormQueues: with one history read slot, many resumes older
// than the index at once all wait their turn and all recover; none fails
// for being queued.
func TestHistoryStormQueues(t *testing.T) {
	srv := redistest.Start(t)
	b := newBroker(t, sbredis.Config{URL: srv.URL, Stream: streamFor(t), Engine: engine.Config{IndexBytes: -1, HistoryReads: 1}})
	brokertest.Listen(t, b)
	first := publish(t, b, "a", 0)
	var want []*core.Envelope
	for i := 1; i <= 20; i++ {
		want = append(want, publish(t, b, "a", i))
	}
	const resumes = 64
	var wg sync.WaitGroup
	errs := make(chan error, resumes)
	for range resumes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := b.History(ctx, core.HistoryRequest{Channels: []string{core.RoomChannel("a")}, Since: first.ID, Limit: 100})
			switch {
			case err != nil:
				errs <- err
			case !res.Recovered || !sameIDs(res.Envelopes, want):
				errs <- fmt.Errorf("recovered %v, %d envelopes", res.Recovered, len(res.Envelopes))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := b.Stats(); s.HistoryFromLog != resumes {
		t.Fatalf("%d History calls read the log, want %d", s.HistoryFromLog, resumes)
	}
}

// TestLateNodeBackfills: a node started after the messages were published
// has nothing of them in its index; the first resume from before its
// start reads the log, and puts what it read (every channel) into the
// index, so the next resumes from there — other rooms' too — read
// nothing more from the log.
func TestLateNodeBackfills(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := sbredis.Config{URL: srv.URL, Stream: streamFor(t)}
	early := newBroker(t, cfg)
	brokertest.Listen(t, early)
	var first string
	want := map[string][]*core.Envelope{}
	for i := range 10 {
		for _, room := range []string{"a", "b", "c"} {
			e := publish(t, early, room, i)
			if first == "" {
				first = e.ID
				continue
			}
			want[room] = append(want[room], e)
		}
	}
	late := newBroker(t, cfg)
	brokertest.Listen(t, late)

	for i, room := range []string{"a", "b", "c"} {
		before := late.Stats()
		res := history(t, late, first, 100, room)
		if !res.Recovered || !sameIDs(res.Envelopes, want[room]) {
			t.Fatalf("room %s: recovered %v %v, want true %v", room, res.Recovered, ids(res.Envelopes), ids(want[room]))
		}
		read := late.Stats().LogRecordsRead - before.LogRecordsRead
		if i == 0 && read == 0 {
			t.Fatal("the first resume from before the node started read nothing from the log")
		}
		if i > 0 && read != 0 {
			t.Fatalf("room %s: read %d log records after the first resume backfilled the index, want 0", room, read)
		}
	}
}
