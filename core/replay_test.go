package core_test

import (
	"context"
	"testing"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// pagedMemory is the memory broker with a hook inside HistoryPage:
// during, if set, runs inside the read, as live traffic would arrive
// while a real broker reads its log.
type pagedMemory struct {
	*memory.Broker
	during func()
}

func (b *pagedMemory) HistoryPage(ctx context.Context, req core.HistoryRequest) (core.HistoryPage, error) {
	p, err := b.Broker.HistoryPage(ctx, req)
	if b.during != nil {
		b.during()
	}
	return p, err
}

// TestReplayPage: with ConnectRequest.ReplayPage the replay is the oldest
// page after Since. Being further behind is no gap (recovered, even past
// HistoryLimit); a page with more to follow ends the session's messages
// (live ones, including those that arrived while the page was read,
// would skip the rest), and one that reaches the end goes live as a
// resume does.
func TestReplayPage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		limit   int // HistoryLimit; 0: the default
		from    int // Since is the id of this message (of 10)
		page    int
		want    []int // the messages replayed
		more    bool
		recover bool
	}{
		{"page with more", 0, 0, 3, []int{1, 2, 3}, true, true},
		{"last page", 0, 6, 3, []int{7, 8, 9}, false, true},
		{"far behind, past HistoryLimit", 5, 0, 3, []int{1, 2, 3}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pm := &pagedMemory{Broker: newMemory(t, memory.Config{})}
			n := newNode(t, core.Config{HistoryLimit: tc.limit}, pm)
			var ids []string
			for i := range 10 {
				ids = append(ids, n.publish("r", data(i)))
			}
			// Live traffic while the page is read: it reaches the hub
			// before the replay is queued.
			pm.during = func() { n.publish("r", data(100)) }
			c := n.connect(core.ConnectRequest{Credentials: core.Credentials{User: "u"}, Rooms: []string{"r"}, Since: ids[tc.from], ReplayPage: tc.page})
			if c.welcome.Recovered == nil || *c.welcome.Recovered != tc.recover {
				t.Fatalf("welcome recovered = %s, want %v", fmtPtr(c.welcome.Recovered), tc.recover)
			}
			for _, i := range tc.want {
				c.expectMessage("r", data(i))
			}
			want := core.Replay{Recovered: tc.recover, Messages: len(tc.want), More: tc.more, Next: ids[tc.want[len(tc.want)-1]]}
			if r := c.s.Replay(); r != want {
				t.Fatalf("Replay() = %+v, want %+v", r, want)
			}
			if !tc.more {
				c.expectMessage("r", data(100)) // arrived during the read: live, after the replay
				n.publish("r", data(101))
				c.expectMessage("r", data(101))
				c.expectQuiet()
				return
			}
			// Nothing live after a page with more to follow: neither what
			// arrived during the read nor what comes later.
			n.publish("r", data(101))
			c.expectQuiet()
		})
	}
}
