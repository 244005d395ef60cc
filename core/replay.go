package core

import (
	"context"
	"fmt"
)

// Replay describes what a session replayed when it connected with
// ConnectRequest.Since.
type Replay struct {
	// Recovered is false when messages after Since are missing (the
	// welcome's "recovered"); true without Since.
	Recovered bool
	// Messages is how many messages were replayed.
	Messages int
	// More: the replay was cut at a page; messages after Next follow in
	// the log. With ConnectRequest.ReplayPage the session gets no live
	// message; without, it reads the next pages as its queue drains.
	More bool
	// Next is where the replay ends, the Since to continue from: the
	// last replayed id or, with More, a later position; Since when
	// nothing was replayed ("" without Since), except that a Since of a
	// lost log (another epoch) continues from the position the broker
	// read the current log through.
	Next string
}

// Replay describes the session's replay (see ConnectRequest.ReplayPage).
// It is final once Accept has returned.
func (s *Session) Replay() Replay {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replay == nil {
		return Replay{}
	}
	return *s.replay
}

// noReplay is the Replay of a connection without Since. Sessions share
// it (Session.replay points to it, read only).
var noReplay = Replay{Recovered: true}

// resume reads what a connection resuming from req.Since missed on
// channels, then lets this node's delivery catch up with the end of the
// replay, so that nothing at or before it can still arrive live (see
// Broker.WaitDelivered); if it does not in time, floor is that end: the
// session drops what arrives late at or before it. A history that cannot
// be read fails with ErrHistoryUnavailable: resuming without it would skip
// what the log still holds, so the client must come back (1013, or 503 on
// the HTTP transports) with the same position.
func (n *Node) resume(ctx context.Context, s *Session, channels []string, req ConnectRequest) (rep Replay, history []*Envelope, floor string, err error) {
	page, err := n.replayPage(ctx, channels, req.Since, req.ReplayPage)
	if err != nil {
		n.log.Warn("history unavailable; asking the client to resume later", append(s.logAttrs(), "err", err)...)
		n.metrics.resumesRetry.Add(1)
		return Replay{}, nil, "", fmt.Errorf("%w: %w", ErrHistoryUnavailable, err)
	}
	n.metrics.resumes.Add(1)
	if !page.Recovered {
		n.metrics.resumesLost.Add(1)
	}
	rep = Replay{Recovered: page.Recovered, Messages: len(page.Envelopes), More: page.More, Next: page.Next}
	if page.More {
		return rep, page.Envelopes, "", nil // nothing live follows a page
	}
	if err := n.broker.WaitDelivered(ctx, page.Next); err != nil {
		n.log.Warn("delivery lags the log; resuming with a floor", append(s.logAttrs(), "err", err)...)
		floor = page.Next
	}
	return rep, page.Envelopes, floor, nil
}

// replayPage reads the page of history after since on channels: at most
// size messages, the oldest (HistoryLimit when size is not positive).
// Next is always set: the last id, a later position with More, or since.
func (n *Node) replayPage(ctx context.Context, channels []string, since string, size int) (HistoryPage, error) {
	if size <= 0 {
		size = n.cfg.HistoryLimit
	}
	page, err := n.broker.HistoryPage(ctx, HistoryRequest{Channels: channels, Since: since, Limit: size})
	if err != nil {
		return HistoryPage{}, err
	}
	if page.Next == "" {
		page.Next = since
		if k := len(page.Envelopes); k > 0 {
			page.Next = page.Envelopes[k-1].ID
		}
	}
	return page, nil
}
