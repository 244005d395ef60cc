package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/postgres/pgtest"
	"github.com/switchboard-dev/switchboard/core"
)

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// tableFor is a table name unique to t: readable, within Table's bound.
func tableFor(t testing.TB) string {
	sum := sha256.Sum256([]byte(t.Name()))
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 24 {
		name = name[len(name)-24:]
	}
	return "t" + hex.EncodeToString(sum[:4]) + "_" + strings.Trim(name, "_")
}

// testDriver opens a driver on its own log (no background trimming),
// closed when the test ends.
func testDriver(t *testing.T, url string, mod func(*Config)) *driver {
	t.Helper()
	cfg := Config{URL: url, Table: tableFor(t), TrimInterval: -1, PollInterval: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	cfg.setDefaults()
	d, err := open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func testMessage(i int, key, digest string) *message.Message {
	env := &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r", From: "t", Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	msg := broker.NewMessage(core.RoomChannel("r"), env)
	if key != "" {
		msg.Metadata.Set(engine.MetadataKey, key)
		msg.Metadata.Set(engine.MetadataDigest, digest)
	}
	return msg
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, d *driver, msgs ...*message.Message) (string, []engine.Appended) {
	t.Helper()
	epoch, res, err := d.Append(ctxFor(t), msgs, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range res {
		if a.Err != nil {
			t.Fatalf("append %d: %v", i, a.Err)
		}
	}
	return epoch, res
}

func positions(recs []engine.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Pos.Lo
	}
	return out
}

func exec(t *testing.T, url, sql string, args ...any) {
	t.Helper()
	ctx := ctxFor(t)
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestAppendDecidesKeys: positions are dense from 1 in append order; a
// repeated key within the window takes no position and reports the
// first one's position and digest, within one batch or across two; an
// expired key appends again; what was appended reads back as it was.
func TestAppendDecidesKeys(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, nil)
	ctx := ctxFor(t)
	epoch, head, err := d.Head(ctx)
	if err != nil || head != (engine.Pos{}) || epoch == "" {
		t.Fatalf("Head of a new log = %q %v %v, want an epoch and the zero position", epoch, head, err)
	}
	first := testMessage(0, "k", "d1")
	e, res := mustAppend(t, d, first, testMessage(1, "", ""), testMessage(2, "k", "d1"))
	if e != epoch {
		t.Fatalf("Append's epoch %q, Head's %q", e, epoch)
	}
	want := []engine.Appended{{Pos: at(1)}, {Pos: at(2)}, {Pos: at(1), Duplicate: true, Digest: "d1"}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("Append = %+v, want %+v", res, want)
	}
	_, res = mustAppend(t, d, testMessage(3, "k", "d2"), testMessage(4, "other", "d"))
	if want := []engine.Appended{{Pos: at(1), Duplicate: true, Digest: "d1"}, {Pos: at(3)}}; fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("second Append = %+v, want %+v", res, want)
	}
	_, res, err = d.Append(ctx, []*message.Message{testMessage(5, "short", "d")}, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	_, res2, err := d.Append(ctx, []*message.Message{testMessage(6, "short", "d")}, time.Minute)
	if err != nil || res[0].Duplicate || res2[0].Duplicate || res2[0].Pos != at(5) {
		t.Fatalf("a key past its window: %+v then %+v, %v; want two appends", res, res2, err)
	}

	chunk, err := d.Range(ctx, engine.Pos{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if chunk.Epoch != epoch || chunk.Trimmed || fmt.Sprint(positions(chunk.Records)) != "[1 2 3 4 5]" {
		t.Fatalf("Range = %q trimmed %v %v", chunk.Epoch, chunk.Trimmed, positions(chunk.Records))
	}
	got := chunk.Records[0].Msg
	if got.UUID != first.UUID || string(got.Payload) != string(first.Payload) || fmt.Sprint(got.Metadata) != fmt.Sprint(first.Metadata) {
		t.Fatalf("read back %s %s %v, appended %s %s %v", got.UUID, got.Payload, got.Metadata, first.UUID, first.Payload, first.Metadata)
	}
	if _, head, _ = d.Head(ctx); head != at(5) {
		t.Fatalf("Head after 5 appended = %v", head)
	}
}

// TestAppendRefusesWhatPostgresCannotHold: a message whose metadata
// PostgreSQL would refuse or alter fails alone; the others append.
func TestAppendRefusesWhatPostgresCannotHold(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, nil)
	nul, bad := testMessage(0, "", ""), testMessage(1, "", "")
	nul.Metadata.Set("x", "a\x00b")
	bad.Metadata.Set("x", "\xff")
	_, res, err := d.Append(ctxFor(t), []*message.Message{nul, testMessage(2, "", ""), bad}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || res[2].Err == nil || res[1].Err != nil || res[1].Pos != at(1) {
		t.Fatalf("Append = %+v, want the first and last refused, the middle one at 1", res)
	}
}

// TestReadWakesOnNotify: a Read waiting for records returns as soon as
// an append commits, long before its poll interval.
func TestReadWakesOnNotify(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, func(c *Config) { c.PollInterval = time.Hour })
	epoch, head, err := d.Head(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	// Whether the Read is already waiting or still querying, it must see
	// the append: by its query or by the notification (follow's Read
	// fails with its context, long before the hour's poll).
	if got := follow(t, d, epoch, head, 10, testMessage(0, "", "")); fmt.Sprint(positions(got)) != "[1]" {
		t.Fatalf("Read = %v, want the record at 1", positions(got))
	}
}

// TestReadPollsWhenNotifyIsLost: a record appended without a
// notification (as if it was lost) is read by the poll.
func TestReadPollsWhenNotifyIsLost(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, func(c *Config) { c.PollInterval = 20 * time.Millisecond })
	ctx := ctxFor(t)
	epoch, head, err := d.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readSilent(t, d, epoch, head)
}

// readSilent appends a record after `after` without a notification (as
// if it was lost) and fails unless Reads from after find it within 20 s:
// the fallback poll.
func readSilent(t *testing.T, d *driver, epoch string, after engine.Pos) {
	t.Helper()
	msg := appendSilently(t, d, int64(after.Lo)+1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := d.Read(ctxFor(t), epoch, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Records) > 0 {
			if len(b.Records) != 1 || b.Records[0].Pos.Lo != after.Lo+1 || b.Records[0].Msg.UUID != msg.UUID {
				t.Fatalf("Read = %v, want the record at %d", positions(b.Records), after.Lo+1)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a record without a notification was not read within 20s")
		}
	}
}

// appendSilently appends a record at pos without the append function,
// so without a notification (as if it was lost).
func appendSilently(t *testing.T, d *driver, pos int64) *message.Message {
	t.Helper()
	ctx := ctxFor(t)
	msg := testMessage(int(pos), "", "")
	md, _ := encodeMetadata(msg)
	err := pgx.BeginFunc(ctx, d.pub, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+d.names.log+` (pos, uuid, payload, metadata) VALUES ($1, $2, $3, $4)`, pos, msg.UUID, msg.Payload, md); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE `+d.names.head+` SET pos = $1`, pos)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// follow runs a Read from after while appending msgs in one append, as
// a reader following the live log does, and returns what it read.
func follow(t *testing.T, d *driver, epoch string, after engine.Pos, max int, msgs ...*message.Message) []engine.Record {
	t.Helper()
	ctx := ctxFor(t)
	type result struct {
		b   engine.Batch
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := d.Read(ctx, epoch, after, max)
		done <- result{b, err}
	}()
	if len(msgs) > 0 {
		mustAppend(t, d, msgs...)
	}
	r := <-done
	if r.err != nil || r.b.Epoch != epoch || r.b.Gap {
		t.Fatalf("Read after %d = %+v, %v", after.Lo, r.b, r.err)
	}
	return r.b.Records
}

// sameRecords fails unless got are the log's records, as a query reads
// them, field by field.
func sameRecords(t *testing.T, d *driver, got []engine.Record) {
	t.Helper()
	if len(got) == 0 {
		t.Fatal("no records")
	}
	c, err := d.Range(ctxFor(t), engine.Pos{Lo: got[0].Pos.Lo - 1}, len(got))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Records) != len(got) {
		t.Fatalf("the log has %d records from %d, Read returned %d", len(c.Records), got[0].Pos.Lo, len(got))
	}
	for i, w := range c.Records {
		g := got[i]
		switch {
		case g.Pos != w.Pos || g.Err != nil || g.Size != w.Size:
			t.Fatalf("record %d: pos %d err %v size %d, want pos %d size %d", i, g.Pos.Lo, g.Err, g.Size, w.Pos.Lo, w.Size)
		case g.Msg.UUID != w.Msg.UUID || !bytes.Equal(g.Msg.Payload, w.Msg.Payload) || !maps.Equal(g.Msg.Metadata, w.Msg.Metadata):
			t.Fatalf("record at %d: read %q %q %v, the log has %q %q %v", g.Pos.Lo,
				g.Msg.UUID, g.Msg.Payload, g.Msg.Metadata, w.Msg.UUID, w.Msg.Payload, w.Msg.Metadata)
		}
	}
}

// TestReadFollowsNotifications: a reader following a live log gets
// small appends' records from their notifications, with no query, each
// exactly as the log holds it (any byte in a payload, any text in a
// uuid or metadata); an append too large for a notification is read by
// a query; a notified batch larger than Read's max comes in parts; and
// a notification lost is made good by the poll.
func TestReadFollowsNotifications(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, func(c *Config) { c.PollInterval = time.Hour })
	ctx := ctxFor(t)
	epoch, at, err := d.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	odd := message.NewMessage(`uuid with spaces, "quotes", \\ and 
 a newline`, every)
	odd.Metadata.Set("switchboard_channel", "room:r")
	odd.Metadata.Set("note", "ünïcode \"quoted\" \\ \n\t and a {brace}")
	appends := [][]*message.Message{
		{odd},
		{message.NewMessage("nnnn", bytes.Repeat([]byte("n"), 1000))}, // base64 full of 'n'
		{message.NewMessage("empty", []byte{})},
		{testMessage(1, "", ""), testMessage(2, "k", "d"), testMessage(3, "", "")},
	}
	for i := range 20 {
		appends = append(appends, []*message.Message{testMessage(10+i, "", "")})
	}
	for _, msgs := range appends {
		got := follow(t, d, epoch, at, 100, msgs...)
		if len(got) != len(msgs) || got[0].Pos.Lo != at.Lo+1 {
			t.Fatalf("read %v after %d, want %d records", positions(got), at.Lo, len(msgs))
		}
		sameRecords(t, d, got)
		at = got[len(got)-1].Pos
	}
	// A notification of what the reader has read already (as when one
	// arrives after the query that saw its append) is no news: the
	// reader waits on instead of querying.
	exec(t, d.cfg.URL, `SELECT pg_notify($1, $2)`, d.names.unit, fmt.Sprintf("%s %d", epoch, at.Lo))
	got := follow(t, d, epoch, at, 100, testMessage(99, "", ""))
	if len(got) != 1 || got[0].Pos.Lo != at.Lo+1 {
		t.Fatalf("read %v after %d, want the next record", positions(got), at.Lo)
	}
	at = got[0].Pos
	// Only the first Read queried (and found nothing): every record came
	// with its notification.
	if q := d.listen.queries.Load(); q != 1 {
		t.Fatalf("%d read queries for %d appends, want 1 (the first Read's)", q, len(appends)+1)
	}

	big := message.NewMessage("big", bytes.Repeat([]byte("x"), notifyMax))
	got = follow(t, d, epoch, at, 100, big)
	if len(got) != 1 || got[0].Msg.UUID != "big" {
		t.Fatalf("read %v, want the large record", positions(got))
	}
	sameRecords(t, d, got)
	at = got[0].Pos
	if q := d.listen.queries.Load(); q != 2 {
		t.Fatalf("%d read queries, want 2: a record too large for its notification is queried", q)
	}

	// Five records in one notification, read two at a time.
	var five []*message.Message
	for i := range 5 {
		five = append(five, testMessage(100+i, "", ""))
	}
	var parts [][]uint64
	for n := 0; n < 5; {
		var got []engine.Record
		if n == 0 {
			got = follow(t, d, epoch, at, 2, five...)
		} else {
			got = follow(t, d, epoch, at, 2)
		}
		sameRecords(t, d, got)
		parts = append(parts, positions(got))
		n += len(got)
		at = got[len(got)-1].Pos
	}
	if b := at.Lo; fmt.Sprint(parts) != fmt.Sprint([][]uint64{{b - 4, b - 3}, {b - 2, b - 1}, {b}}) {
		t.Fatalf("read %v, want the five in parts of two", parts)
	}
	if q := d.listen.queries.Load(); q != 2 {
		t.Fatalf("%d read queries, want still 2", q)
	}

	// Caught up, a lost notification is still found by the poll.
	d.cfg.PollInterval = 50 * time.Millisecond
	readSilent(t, d, epoch, at)
}

// TestParseNote: a notification the reader cannot fully read carries no
// records (the reader then queries); it never yields a record the engine
// would skip as malformed.
func TestParseNote(t *testing.T) {
	md := `{"switchboard_channel":"room:r"}`
	for _, c := range []struct {
		name, payload string
		last          int64
		recs          int
	}{
		{"head only", "e1 7", 7, 0},
		{"one record", `e1 7 [[7,"u","eyJ2IjoxfQ==",` + md + `]]`, 7, 1},
		{"two records", `e1 8 [[7,"u","eyJ2IjoxfQ==",` + md + `],[8,"w","",` + md + `]]`, 8, 2},
		{"base64 broken by a newline", "e1 7 [[7,\"u\",\"eyJ2\\nIjoxfQ==\"," + md + "]]", 7, 1},
		{"not ending at last", `e1 8 [[7,"u","eyJ2IjoxfQ==",` + md + `]]`, 8, 0},
		{"not consecutive", `e1 9 [[7,"u","",` + md + `],[9,"w","",` + md + `]]`, 9, 0},
		{"bad base64", `e1 7 [[7,"u","%%",` + md + `]]`, 7, 0},
		{"metadata missing", `e1 7 [[7,"u","eyJ2IjoxfQ=="]]`, 7, 0},
		{"metadata not an object", `e1 7 [[7,"u","eyJ2IjoxfQ==",[1]]]`, 7, 0},
		{"uuid not a string", `e1 7 [[7,1,"eyJ2IjoxfQ==",` + md + `]]`, 7, 0},
		{"not JSON", "e1 7 [[7,", 7, 0},
		{"empty array", "e1 7 []", 7, 0},
		{"position unreadable", "e1 x", unknownPos, 0},
		{"position unreadable, records after it", `e1 x [[7,"u","eyJ2IjoxfQ==",` + md + `]]`, unknownPos, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := parseNote(c.payload)
			if n.epoch != "e1" || n.last != c.last || len(n.recs) != c.recs {
				t.Fatalf("parseNote = %q %d with %d records, want e1 %d with %d", n.epoch, n.last, len(n.recs), c.last, c.recs)
			}
			// Whatever the payload, the reader never takes it for an
			// append it has read already: it delivers the records it
			// carries, or it is news that makes the reader query.
			l := &listener{notes: []note{n}}
			after := c.last - int64(max(c.recs, 1))
			if recs := l.take("e1", at(after), 100); len(recs) != c.recs {
				t.Fatalf("take after %d = %d records, want %d", after, len(recs), c.recs)
			}
			if c.recs == 0 && l.announced("e1", 6) {
				t.Fatalf("a query that saw the head at 6 took the note as announced")
			}
			for _, r := range n.recs {
				if r.Err != nil || r.Msg == nil {
					t.Fatalf("record at %d: %v", r.Pos.Lo, r.Err)
				}
			}
		})
	}
}

// TestHeadWentBack: a head below the reader's position under the same
// epoch (a failover to a standby that lost the last commits) is logged as
// an error, once, instead of going unnoticed while the reader skips the
// positions handed out again.
func TestHeadWentBack(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	var logs bytes.Buffer // written by Read only, on this goroutine
	cfg := Config{URL: srv.URL, Table: tableFor(t), TrimInterval: -1, PollInterval: 50 * time.Millisecond}
	cfg.setDefaults()
	d, err := open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := ctxFor(t)
	epoch, _ := mustAppend(t, d, testMessage(0, "", ""), testMessage(1, "", ""), testMessage(2, "", ""), testMessage(3, "", ""))
	if _, err := d.Read(ctx, epoch, at(2), 100); err != nil || strings.Contains(logs.String(), "went back") {
		t.Fatalf("Read behind the head: %v, logged %q", err, logs.String())
	}
	exec(t, srv.URL, `DELETE FROM `+d.names.log+` WHERE pos > 2`)
	exec(t, srv.URL, `UPDATE `+d.names.head+` SET pos = 2`)
	for range 2 {
		if _, err := d.Read(ctx, epoch, at(4), 100); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "went back"); n != 1 || !strings.Contains(logs.String(), "head=2 reader=4") {
		t.Fatalf("logged %d times (want 1, with head=2 reader=4): %s", n, logs.String())
	}
}

// TestReadBoundsBytes: the reader reads large records a few at a time
// (readBytesMax of payloads after the first record, which always comes),
// in order and all of them, while history pages (Range) stay whole.
func TestReadBoundsBytes(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, nil)
	ctx := ctxFor(t)
	big := func(i, size int) *message.Message {
		m := testMessage(i, "", "")
		m.Payload = bytes.Repeat([]byte{byte('a' + i)}, size)
		return m
	}
	const mib = 1 << 20
	var msgs []*message.Message
	for i := range 6 {
		msgs = append(msgs, big(i, mib))
	}
	msgs = append(msgs, big(6, 5*mib)) // larger than the bound alone
	epoch, _ := mustAppend(t, d, msgs...)
	for _, c := range []struct {
		after, first, last uint64
	}{
		{0, 1, 4}, // 4 MiB before the 5th record: it waits for the next read
		{4, 5, 7}, // 2 MiB before the 7th, which is read whatever its size
	} {
		b, err := d.Read(ctx, epoch, at(int64(c.after)), 100)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(b.Records); n == 0 || b.Records[0].Pos.Lo != c.first || b.Records[n-1].Pos.Lo != c.last || b.Gap {
			t.Fatalf("Read after %d = %d records (gap %v), want %d to %d", c.after, n, b.Gap, c.first, c.last)
		}
		for _, r := range b.Records {
			if i := int(r.Pos.Lo - 1); !bytes.Equal(r.Msg.Payload, msgs[i].Payload) {
				t.Fatalf("record %d: payload of %d bytes is not message %d's", r.Pos.Lo, len(r.Msg.Payload), i)
			}
		}
	}
	chunk, err := d.Range(ctx, engine.Pos{}, 100)
	if err != nil || len(chunk.Records) != 7 {
		t.Fatalf("Range from the start = %d records, %v; want all 7", len(chunk.Records), err)
	}
}

// TestTrimAndGaps: trimming by count and by age deletes the oldest
// records; Range after a deleted position reports Trimmed and Read a
// Gap, from a position still retained neither; Read from the log's start
// (a reader that has read nothing of it) reports the records trimmed
// before it read them; expired keys go too.
func TestTrimAndGaps(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, func(c *Config) { c.MaxMsgs, c.MaxAge = 5, time.Hour })
	ctx := ctxFor(t)
	var epoch string
	for i := range 4 {
		epoch, _ = mustAppend(t, d, testMessage(5*i, "", ""), testMessage(5*i+1, "", ""), testMessage(5*i+2, "", ""),
			testMessage(5*i+3, "", ""), testMessage(5*i+4, fmt.Sprint("key", i), "d"))
	}
	if n, err := d.trim(ctx); err != nil || n != 15 {
		t.Fatalf("trim = %d, %v; want 15 of 20 deleted", n, err)
	}
	for _, c := range []struct {
		after   uint64
		trimmed bool // Range's: from 0 is from wherever the log starts now
		first   uint64
		gap     bool // Read's: from 0 is from the log's first position, 1
	}{
		{0, false, 16, true}, {3, true, 16, true}, {14, true, 16, true}, {15, false, 16, false}, {18, false, 19, false}, {20, false, 0, false},
	} {
		chunk, err := d.Range(ctx, at(int64(c.after)), 100)
		if err != nil {
			t.Fatal(err)
		}
		first := uint64(0)
		if len(chunk.Records) > 0 {
			first = chunk.Records[0].Pos.Lo
		}
		if chunk.Trimmed != c.trimmed || first != c.first {
			t.Errorf("Range after %d = trimmed %v from %d, want %v from %d", c.after, chunk.Trimmed, first, c.trimmed, c.first)
		}
		b, err := d.Read(ctx, epoch, at(int64(c.after)), 100)
		if err != nil {
			t.Fatal(err)
		}
		if b.Gap != c.gap {
			t.Errorf("Read after %d: Gap %v, want %v", c.after, b.Gap, c.gap)
		}
	}

	// By age: every record is older than MaxAge.
	exec(t, srv.URL, `UPDATE `+d.names.log+` SET created_at = now() - interval '2 hours'`)
	if n, err := d.trim(ctx); err != nil || n != 5 {
		t.Fatalf("trim by age = %d, %v; want the 5 left deleted", n, err)
	}
	chunk, err := d.Range(ctx, at(19), 100)
	if err != nil || !chunk.Trimmed || len(chunk.Records) > 0 {
		t.Fatalf("Range after 19 of an empty log at 20 = %+v, %v; want trimmed and nothing", chunk, err)
	}
	if chunk, err := d.Range(ctx, at(20), 100); err != nil || chunk.Trimmed {
		t.Fatalf("Range after the head of an empty log = %+v, %v; want not trimmed", chunk, err)
	}
	if b, err := d.Read(ctx, epoch, at(19), 100); err != nil || !b.Gap || b.Head != at(20) || len(b.Records) > 0 {
		t.Fatalf("Read after 19 of an empty log at 20 = %+v, %v; want a gap up to the head, 20", b, err)
	}
	if b, err := d.Read(ctx, epoch, at(20), 100); err != nil || b.Gap || len(b.Records) > 0 {
		t.Fatalf("Read after the head of an empty log = %+v, %v; want nothing", b, err)
	}
	if p, err := d.Since(ctx, time.Now().Add(-time.Hour)); err != nil || p != at(20) {
		t.Fatalf("Since on an empty log = %v, %v; want the head", p, err)
	}

	// Keys past their window are deleted by trimming too.
	if _, _, err := d.Append(ctx, []*message.Message{testMessage(0, "brief", "d")}, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if _, err := d.trim(ctx); err != nil {
		t.Fatal(err)
	}
	var keys int
	if err := d.hist.QueryRow(ctx, `SELECT count(*) FROM `+d.names.keys+` WHERE key = 'brief'`).Scan(&keys); err != nil || keys != 0 {
		t.Fatalf("%d expired keys left after trim, %v", keys, err)
	}
}

// TestSince: the position before the first record appended at or after
// a time (by the database's clock), the head when none was.
func TestSince(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, nil)
	ctx := ctxFor(t)
	mustAppend(t, d, testMessage(0, "", ""))
	mustAppend(t, d, testMessage(1, "", ""), testMessage(2, "", ""))
	var t1, t2 time.Time
	if err := d.hist.QueryRow(ctx, `SELECT (SELECT created_at FROM `+d.names.log+` WHERE pos = 1), (SELECT created_at FROM `+d.names.log+` WHERE pos = 2)`).Scan(&t1, &t2); err != nil {
		t.Fatal(err)
	}
	if !t1.Before(t2) {
		t.Fatalf("append times %v, %v: the second append was not stored later", t1, t2)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want engine.Pos
	}{
		{"before the log", t1.Add(-time.Hour), at(0)},
		{"at the first", t1, at(0)},
		{"between", t1.Add(t2.Sub(t1) / 2), at(1)},
		{"at the second append", t2, at(1)},
		{"after everything", t2.Add(time.Hour), at(3)},
	} {
		got, err := d.Since(ctx, c.at)
		if err != nil || got != c.want {
			t.Errorf("%s: Since = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// TestMigrateConcurrently: nodes starting together on a database
// without the log create it once: every one gets the same epoch, one
// head row, and the schema version of the last migration.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	cfg := Config{URL: srv.URL, Schema: "fresh", Table: "log", TrimInterval: -1}
	cfg.setDefaults()
	const nodes = 6
	ds := make(chan *driver, nodes)
	errs := make(chan error, nodes)
	var wg sync.WaitGroup
	for range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := open(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				errs <- err
				return
			}
			ds <- d
		}()
	}
	wg.Wait()
	close(ds)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	epochs := map[string]bool{}
	for d := range ds {
		e, _, err := d.Head(ctxFor(t))
		if err != nil {
			t.Error(err)
		}
		epochs[e] = true
		_ = d.Close()
	}
	if len(epochs) != 1 {
		t.Errorf("epochs %v, want one", epochs)
	}
	ctx := ctxFor(t)
	c, err := pgx.Connect(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var heads, version int
	if err := c.QueryRow(ctx, `SELECT (SELECT count(*) FROM fresh.log_head), (SELECT version FROM fresh.switchboard_schema_version WHERE component = 'fresh.log')`).Scan(&heads, &version); err != nil {
		t.Fatal(err)
	}
	if heads != 1 || version != migrations[len(migrations)-1].version {
		t.Errorf("%d head rows and schema version %d, want 1 and %d", heads, version, migrations[len(migrations)-1].version)
	}
}

// TestDroppedTablesNewEpoch: when the log's table is dropped under a
// running node, its next operation creates the log's tables again (what
// was left of them goes too) under a new epoch, and its reader reads the
// new log from its start.
func TestDroppedTablesNewEpoch(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	d := testDriver(t, srv.URL, nil)
	ctx := ctxFor(t)
	old, _ := mustAppend(t, d, testMessage(0, "", ""), testMessage(1, "", ""))
	exec(t, srv.URL, `DROP TABLE `+d.names.log)
	b, err := d.Read(ctx, old, at(2), 10)
	if err != nil {
		t.Fatal(err)
	}
	if b.Epoch == old || len(b.Records) > 0 || b.Gap {
		t.Fatalf("Read after the drop = %+v, want a new epoch and nothing", b)
	}
	epoch, res := mustAppend(t, d, testMessage(2, "", ""))
	if epoch != b.Epoch || res[0].Pos != at(1) {
		t.Fatalf("Append after the drop = %s %v, want %s at 1", epoch, res[0].Pos, b.Epoch)
	}
	b, err = d.Read(ctx, old, at(2), 10)
	if err != nil || b.Epoch != epoch || fmt.Sprint(positions(b.Records)) != "[1]" {
		t.Fatalf("Read from the old epoch = %+v, %v; want the new log from its start", b, err)
	}
}

// TestMigrateUpgrades: a log migrated by an older node (the first step
// only) gets the later steps, once, and works.
func TestMigrateUpgrades(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	n := newNames(DefaultSchema, tableFor(t))
	exec(t, srv.URL, migrations[0].sql(n))
	exec(t, srv.URL, `CREATE TABLE `+n.versions+` (component text PRIMARY KEY, version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO `+n.versions+` (component, version) VALUES ('`+n.unit+`', 1)`)
	var epoch string
	c := connectPG(t, srv.URL)
	if err := c.QueryRow(ctxFor(t), `SELECT epoch FROM `+n.head).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	d := testDriver(t, srv.URL, func(c *Config) { c.Table = n.table })
	e, res := mustAppend(t, d, testMessage(0, "", ""))
	if e != epoch || res[0].Pos != at(1) {
		t.Fatalf("append after the upgrade: %s at %v, want %s at 1 (the same log)", e, res[0].Pos, epoch)
	}
	var version int
	if err := c.QueryRow(ctxFor(t), `SELECT version FROM `+n.versions+` WHERE component = $1`, n.unit).Scan(&version); err != nil || version != migrations[len(migrations)-1].version {
		t.Fatalf("schema version %d, %v; want %d", version, err, migrations[len(migrations)-1].version)
	}
}

func connectPG(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctxFor(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
