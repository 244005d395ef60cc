package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// policyRooms are the rooms whose slow-consumer policy loses messages by
// design (every edge runs with --slow-consumer-rooms naming them). A
// subscriber that falls behind in them may miss messages without being
// told; what the check holds them to is what those policies promise:
// nothing twice, nothing out of order, and the room's newest message.
// The other rooms follow their edge's policy (close, or resume on one
// edge), which promise everything.
var policyRooms = []struct{ room, policy string }{
	{"chaos-drop", "drop-oldest"},
	{"chaos-conflate", "conflate"},
}

// policyFlag is --slow-consumer-rooms for the edges.
func policyFlag() string {
	var rules []string
	for _, pr := range policyRooms {
		rules = append(rules, pr.room+"="+pr.policy)
	}
	return strings.Join(rules, ",")
}

func policyRoomNames() []string {
	var names []string
	for _, pr := range policyRooms {
		names = append(names, pr.room)
	}
	return names
}

// policyOf is a room's policy when it loses messages by design, else "".
func policyOf(room string) string {
	for _, pr := range policyRooms {
		if pr.room == room {
			return pr.policy
		}
	}
	return ""
}

// policiesActed polls the edges' counters until drop-oldest and conflate
// have both acted, or wait has passed, and returns the last counters.
func policiesActed(ctx context.Context, edges []*proc, wait time.Duration) (map[string]uint64, error) {
	deadline := time.Now().Add(wait)
	for {
		sum, err := policyCounters(ctx, edges)
		if err != nil || (sum["dropped"] > 0 && sum["conflated"] > 0) || time.Now().After(deadline) {
			return sum, err
		}
		select {
		case <-ctx.Done():
			return sum, ctx.Err()
		case <-time.After(100 * time.Millisecond): // the counters have no notification
		}
	}
}

// policyCounters sums the edges' slow-consumer counters from /stats: how
// often each policy acted since the edges started.
func policyCounters(ctx context.Context, edges []*proc) (map[string]uint64, error) {
	sum := map[string]uint64{}
	for _, e := range edges {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.addr+"/stats", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s /stats: %w", e.name, err)
		}
		var st map[string]any
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s /stats: %w", e.name, err)
		}
		for _, k := range []string{"slow_closed", "resume_gaps", "resume_gaps_lost", "dropped", "conflated"} {
			if v, ok := st[k].(float64); ok {
				sum[k] += uint64(v)
			}
		}
	}
	return sum, nil
}
