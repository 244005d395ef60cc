package engine_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/engine"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// The engine's paged history, on Redis: the driver is thin, the paging is
// the engine's.

// newRedis returns a started engine on srv, on a stream of its own.
func newRedis(t *testing.T, srv *redistest.Server, maxLen int64, cfg engine.Config) *engine.Broker {
	t.Helper()
	stream := "sb:" + strings.NewReplacer("/", "_", " ", "_", ",", "_").Replace(t.Name())
	b, err := sbredis.New(context.Background(), sbredis.Config{URL: srv.URL, Stream: stream, MaxLen: maxLen, Engine: cfg}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := b.Start(context.Background(), func(core.Delivery) {}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return b
}

func publishRoom(t *testing.T, b *engine.Broker, room string, i int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.Publish(ctx, core.Publication{Channel: core.RoomChannel(room), Envelope: &core.Envelope{
		V: core.Version, Type: core.TypeMessage, Room: room, From: "t", Data: json.RawMessage(strconv.Itoa(i))}})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return res.ID
}

func head(t *testing.T, b *engine.Broker) string {
	t.Helper()
	h, err := b.Head(context.Background())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

func page(t *testing.T, b *engine.Broker, since string, limit int, rooms ...string) core.HistoryPage {
	t.Helper()
	var chs []string
	for _, r := range rooms {
		chs = append(chs, core.RoomChannel(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := b.HistoryPage(ctx, core.HistoryRequest{Channels: chs, Since: since, Limit: limit})
	if err != nil {
		t.Fatalf("HistoryPage: %v", err)
	}
	return p
}

// pageThrough pages from since until a page without More, checking each
// page's shape and what it cost, and returns every id in order and the
// number of pages.
func pageThrough(t *testing.T, b *engine.Broker, since string, limit int, rooms ...string) (got []string, pages int) {
	t.Helper()
	for {
		before := b.Stats()
		p := page(t, b, since, limit, rooms...)
		after := b.Stats()
		pages++
		if !p.Recovered || len(p.Envelopes) > limit || p.Next == "" {
			t.Fatalf("page %d from %s: recovered %v, %d envelopes, next %q; want recovered, at most %d, a next", pages, since, p.Recovered, len(p.Envelopes), p.Next, limit)
		}
		if k := len(p.Envelopes); k > 0 && !p.More && p.Next != p.Envelopes[k-1].ID {
			t.Fatalf("last page: next %s, want its last id %s", p.Next, p.Envelopes[k-1].ID)
		}
		// The cost follows the page: one more than it of the log, and of
		// each channel's index entries.
		if logRead := after.LogRecordsRead - before.LogRecordsRead; logRead > uint64(limit+1) {
			t.Fatalf("page %d read %d log records, want at most %d", pages, logRead, limit+1)
		}
		if idx := after.IndexEntriesRead - before.IndexEntriesRead; idx > uint64(len(rooms)*(limit+1)) {
			t.Fatalf("page %d took %d index entries, want at most %d", pages, idx, len(rooms)*(limit+1))
		}
		for _, e := range p.Envelopes {
			got = append(got, e.ID)
		}
		if !p.More {
			return got, pages
		}
		if p.Next == since {
			t.Fatalf("page %d: More without progress from %s", pages, since)
		}
		since = p.Next
	}
}

// TestHistoryPage: paging from far behind returns every message of the
// asked channels once, in log order, whether the pages come from the
// index, from the log, or from the log and then the index, each page
// costing about its size; none is a gap.
func TestHistoryPage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tests := []struct {
		name    string
		cfg     engine.Config
		fromLog bool // some pages read the log
	}{
		{"index", engine.Config{}, false},
		{"log then index", engine.Config{IndexEntries: 40}, true},
		{"no index", engine.Config{IndexBytes: -1, ReadCount: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newRedis(t, srv, -1, tt.cfg)
			since := publishRoom(t, b, "a", -1)
			var want []string
			for i := range 60 {
				for _, room := range []string{"a", "b", "c"} {
					id := publishRoom(t, b, room, i)
					if room != "c" {
						want = append(want, id)
					}
				}
			}
			got, pages := pageThrough(t, b, since, 7, "a", "b")
			if !slices.Equal(got, want) {
				t.Fatalf("paged %d ids, want %d: got %v, want %v", len(got), len(want), got, want)
			}
			if pages < len(want)/7 {
				t.Fatalf("%d pages for %d messages of 7", pages, len(want))
			}
			if st := b.Stats(); (st.HistoryFromLog > 0) != tt.fromLog || (st.LogRecordsRead > 0) != tt.fromLog {
				t.Fatalf("stats %+v: want pages from the log %v", st, tt.fromLog)
			}
		})
	}
}

// TestHistoryPageSparse: a quiet channel far behind in a busy log pages
// through the others' records a page's worth at a time (empty pages with
// More and a Next that moves on), never reading more per page than a page.
func TestHistoryPageSparse(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newRedis(t, srv, -1, engine.Config{IndexBytes: -1})
	since := head(t, b)
	if since == "" {
		since = publishRoom(t, b, "busy", -1)
	}
	for i := range 300 {
		publishRoom(t, b, "busy", i)
	}
	want := publishRoom(t, b, "quiet", 0)
	got, pages := pageThrough(t, b, since, 10, "quiet")
	if !slices.Equal(got, []string{want}) {
		t.Fatalf("paged %v, want [%s]", got, want)
	}
	if pages < 300/11 {
		t.Fatalf("%d pages: the reads were not bounded by the page", pages)
	}
}

// TestHistoryPageGaps: recovered:false only where messages are missing:
// a position the log has trimmed (the page starts at the oldest retained,
// and the next page from there is whole again), an unparseable one, and
// one of another epoch (whose log is gone: the page is this log's
// oldest); a position inside retention, however far behind, is
// recovered.
func TestHistoryPageGaps(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	b := newRedis(t, srv, 20, engine.Config{})
	var all []string
	for i := range 200 {
		all = append(all, publishRoom(t, b, "a", i))
	}
	p := page(t, b, all[0], 5, "a")
	if p.Recovered || len(p.Envelopes) != 5 || !p.More {
		t.Fatalf("trimmed cursor: recovered %v, %d envelopes, more %v; want false, 5, more", p.Recovered, len(p.Envelopes), p.More)
	}
	i := slices.Index(all, p.Envelopes[0].ID)
	if i < 1 || !slices.Equal(envIDs(p.Envelopes), all[i:i+5]) {
		t.Fatalf("trimmed cursor gave %v: want a run of the retained messages", envIDs(p.Envelopes))
	}
	rest, _ := pageThrough(t, b, p.Next, 5, "a") // recovered from there on
	if !slices.Equal(rest, all[i+5:]) {
		t.Fatalf("after the gap: %d ids, want the %d after the first page", len(rest), len(all[i+5:]))
	}

	epoch, pos, _ := engine.ParseID(all[190])
	firstFive := envIDs(p.Envelopes) // the oldest retained
	cases := []struct {
		name, since string
		recovered   bool
		want        []string
	}{
		{"inside retention", all[190], true, all[191:196]},
		{"unparseable", "not-a-cursor", false, nil},
		// The log of that epoch is gone: this one, from its start (as
		// far as retention keeps it: the first page after the gap).
		{"another epoch", engine.FormatID(epoch+"x", pos), false, firstFive},
		{"ahead of the log", engine.FormatID(epoch, engine.Pos{Hi: pos.Hi + 1<<40}), false, nil},
	}
	for _, tc := range cases {
		p := page(t, b, tc.since, 5, "a")
		if p.Recovered != tc.recovered || !slices.Equal(envIDs(p.Envelopes), tc.want) {
			t.Errorf("%s: recovered %v %v, want %v %v", tc.name, p.Recovered, envIDs(p.Envelopes), tc.recovered, tc.want)
		}
	}
}

func envIDs(envs []*core.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}
