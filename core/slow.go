package core

import (
	"context"
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

// pause is the resume policy's state for one session, and that of a
// resume too far behind for one page; a session that is not paused has
// none (Session.pause is nil). While paused, no broker message is queued
// (they are all in the log); once the queue has drained, the writer
// replays the session's channels from since a page at a time (catchUp),
// so ids stay in order across rooms.
type pause struct {
	since     string
	replaying bool   // the replay is being fetched: hold live messages
	held      []item // held live messages, de-duplicated after the replay
	overflow  bool   // held outgrew its bound during the replay
}

// holdLocked handles a live broker message while paused.
func (s *Session) holdLocked(it item) {
	p := s.pause
	if !p.replaying {
		return // in the log; the replay will fetch it
	}
	if len(p.held) >= s.max+s.node.cfg.HistoryLimit {
		p.overflow = true
		return
	}
	p.held = append(p.held, it)
}

// catchUp replays what the session missed while paused, a page at a
// time: the log's messages after pauseSince on every channel the session
// is in (Broker.HistoryPage, HistoryLimit per page). A page with more
// behind it is queued and the session stays paused: the writer reads the
// next page once the queue has drained again, so a client far behind
// catches up at the pace it reads, whatever the distance. The last page
// is followed by the live messages held meanwhile minus those the replay
// covered, and the session goes live. Runs on the writer goroutine. Where
// the log no longer holds part of the gap (retention), a "gap" envelope
// with recovered:false comes before what it still had.
func (s *Session) catchUp() {
	s.mu.Lock()
	p := s.pause
	if p == nil || s.closing != nil {
		s.mu.Unlock()
		return
	}
	p.replaying, p.held, p.overflow = true, nil, false
	since := p.since
	s.mu.Unlock()

	channels := []string{UserChannel(s.user)}
	for _, room := range s.Rooms() {
		channels = append(channels, RoomChannel(room))
	}
	b := s.node.broker
	ctx, cancel := context.WithTimeout(s.ctx, s.node.cfg.BrokerTimeout)
	page, err := s.node.replayPage(ctx, channels, since, 0)
	lagging := false
	if err == nil && !page.More {
		if werr := b.WaitDelivered(ctx, page.Next); werr != nil {
			lagging = true
			s.node.log.Warn("delivery lags the log during a replay", append(s.logAttrs(), "err", werr)...)
		}
	}
	cancel()

	s.mu.Lock()
	if s.closing != nil || s.pause != p {
		s.mu.Unlock()
		return
	}
	if err != nil || (p.overflow && !page.More) {
		s.node.log.Warn("cannot replay from the log; closing as slow consumer", append(s.logAttrs(), "err", err, "overflow", p.overflow)...)
		s.slowCloseLocked()
		return
	}
	if !page.Recovered {
		s.node.stats.gapsLost.Add(1)
		s.pushLocked(item{frame: gapEnvelope().Encode()})
	}
	seen := make(map[string]struct{}, len(page.Envelopes))
	for _, env := range page.Envelopes {
		seen[env.ID] = struct{}{}
		s.pushLocked(item{frame: env.Encode(), id: env.ID, ch: channelOf(env), replay: true})
	}
	if page.More {
		// More behind: stay paused; the writer reads the next page once
		// this one has drained. What was held is in the log.
		p.since, p.replaying, p.held = page.Next, false, nil
		s.mu.Unlock()
		return
	}
	last := page.Next
	for _, it := range p.held {
		if _, dup := seen[it.id]; dup {
			continue
		}
		if last != "" {
			if after, ok := b.After(it.id, last); ok && !after {
				continue
			}
		}
		s.pushLocked(it)
	}
	if lagging && last != "" {
		s.floor = last
	}
	s.pause = nil
	s.mu.Unlock()
	s.node.log.Info("replay from the log caught up; live again", append(s.logAttrs(), "last_page", len(page.Envelopes), "recovered", page.Recovered)...)
}

// channelOf is the broker channel an envelope from history belongs to.
func channelOf(env *Envelope) string {
	switch {
	case env.Room != "":
		return RoomChannel(env.Room)
	case env.To != "":
		return UserChannel(env.To)
	}
	return BroadcastChannel
}
