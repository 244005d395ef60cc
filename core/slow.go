package core

import (
	"context"
	"encoding/json"
	"path"
	"strings"
)

// RoomPolicy applies a slow-consumer policy to the rooms whose names match
// Pattern (path.Match syntax: "ticker:*", "chat:?"). The first matching
// rule wins; rooms matching none, and direct messages, use
// Config.SlowConsumer.
type RoomPolicy struct {
	Pattern string
	Policy  SlowPolicy
}

// policyFor returns the slow-consumer policy for a broker channel.
func (n *Node) policyFor(channel string) SlowPolicy {
	if room, ok := strings.CutPrefix(channel, "room:"); ok {
		for _, rp := range n.cfg.RoomPolicies {
			if m, _ := path.Match(rp.Pattern, room); m {
				return rp.Policy
			}
		}
	}
	return n.cfg.SlowConsumer
}

// gap is a channel paused by the resume policy: its live messages are not
// queued (they are in the log) until the writer has drained the queue and
// replayed the channel from since.
type gap struct {
	since     string
	buffering bool   // a replay is under way: hold live messages
	pending   []item // held live messages, de-duplicated after the replay
	overflow  bool   // pending outgrew its bound during the replay
}

// gapDeliveryLocked handles a live message for a paused channel.
func (s *Session) gapDeliveryLocked(g *gap, it item) {
	if !g.buffering {
		return // in the log; the replay will fetch it
	}
	if len(g.pending) >= s.max+s.node.cfg.HistoryLimit {
		g.overflow = true
		return
	}
	g.pending = append(g.pending, it)
}

// catchUp replays one paused channel from the log into the (drained)
// queue, then the live messages held meanwhile minus those the replay
// covered. Runs on the writer goroutine. If the log no longer holds the
// whole gap, the client gets a "gap" envelope with recovered:false.
func (s *Session) catchUp() {
	s.mu.Lock()
	var ch string
	var g *gap
	for c, gg := range s.gaps {
		ch, g = c, gg
		break
	}
	if g == nil || s.closing != nil {
		s.mu.Unlock()
		return
	}
	g.buffering, g.pending, g.overflow = true, nil, false
	since := g.since
	s.mu.Unlock()

	b := s.node.broker
	ctx, cancel := context.WithTimeout(s.ctx, s.node.cfg.BrokerTimeout)
	res, err := b.History(ctx, HistoryRequest{Channels: []string{ch}, Since: since, Limit: s.node.cfg.HistoryLimit})
	last := since
	if err == nil && len(res.Envelopes) > 0 {
		last = res.Envelopes[len(res.Envelopes)-1].ID
	}
	if sy, ok := b.(Syncer); ok && err == nil {
		if werr := sy.WaitDelivered(ctx, last); werr != nil {
			s.node.log.Warn("delivery lags the log during a replay", "conn", s.id, "channel", ch, "err", werr)
		}
	}
	cancel()

	s.mu.Lock()
	if s.closing != nil || s.gaps[ch] != g {
		s.mu.Unlock()
		return
	}
	if err != nil || g.overflow {
		s.node.log.Warn("cannot replay a paused channel; closing as slow consumer", "conn", s.id, "channel", ch, "err", err, "overflow", g.overflow)
		s.slowCloseLocked()
		return
	}
	seen := make(map[string]struct{}, len(res.Envelopes))
	for _, env := range res.Envelopes {
		seen[env.ID] = struct{}{}
		s.pushLocked(item{env.Encode(), env.ID, ch})
	}
	pos, _ := b.(Positioner)
	for _, p := range g.pending {
		if _, dup := seen[p.id]; dup {
			continue
		}
		if pos != nil && last != "" {
			if after, ok := pos.After(p.id, last); ok && !after {
				continue
			}
		}
		s.pushLocked(p)
	}
	delete(s.gaps, ch)
	if !res.Recovered {
		s.node.stats.gapsLost.Add(1)
		room, _ := strings.CutPrefix(ch, "room:")
		data, _ := json.Marshal(struct {
			Room      string `json:"room,omitempty"`
			Recovered bool   `json:"recovered"`
		}{room, false})
		s.pushLocked(item{frame: (&Envelope{V: Version, Type: TypeGap, Room: room, Data: data}).Encode()})
	}
	s.mu.Unlock()
	s.node.log.Info("slow consumer: channel replayed from the log", "conn", s.id, "channel", ch, "messages", len(res.Envelopes), "recovered", res.Recovered)
}
