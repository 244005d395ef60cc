package nats

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/nats/natstest"
)

// TestSince: the position before the first message stored at or after
// a time; after the last one when nothing was stored since; the start
// for a time before the stream.
func TestSince(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	d, js := testDriver(t, ns.URL, false) // messages 1 and 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The stream's clock, not this one: the time stored with message 2.
	s, err := js.Stream(ctx, "MISSING")
	if err != nil {
		t.Fatal(err)
	}
	m1, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := s.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	atM2 := engine.Pos{Lo: 1}
	if !m1.Time.Before(m2.Time) {
		atM2 = engine.Pos{} // stored in the same instant: message 1 is at or after it too
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want engine.Pos
	}{
		{"before the stream", m2.Time.Add(-time.Hour), engine.Pos{}},
		{"at message 2", m2.Time, atM2},
		{"after everything", m2.Time.Add(time.Hour), engine.Pos{Lo: 2}},
	} {
		got, err := d.Since(ctx, c.at)
		if err != nil || got != c.want {
			t.Errorf("%s: Since = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
