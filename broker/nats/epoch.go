package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/core"
)

// pubEpoch is what the publishing path knows of the stream, so that the
// epoch of an appended batch is known without asking the server for
// the stream's info each time (a JetStream API request costs more than
// the batch itself). A PubAck names the stream and the sequence, not
// the stream's creation time: the epoch verified last holds for a batch
// unless something says the stream may have been replaced since:
//
//   - an advisory about the stream (created, deleted, updated, …) on the
//     publishing connection;
//   - a reconnection of that connection (a memory-storage server's
//     restart loses the stream without an advisory);
//   - another epoch seen by the reader or Head;
//   - a sequence that is not new: a stream hands out increasing
//     sequences, so an appended message at or below the highest
//     sequence known went to another stream.
//
// Then the stream's info is asked for (a verification), and when its
// epoch is not the one verified before, the batch's first and last
// messages are looked up in it. What is left is a stream replaced
// between two of this node's batches and then given more messages than
// the old one had, all before the advisory of its deletion reached the
// node; where advisories are not permitted, every batch is verified.
type pubEpoch struct {
	mu         sync.Mutex
	stream     jetstream.Stream // as last looked up on the publishing connection (for GetMsg); nil before the first batch
	epoch      string           // verified
	maxSeq     uint64           // the highest sequence known in epoch
	reconnects uint64           // the publishing connection's reconnects when verified
	stale      bool             // an advisory came since
	always     bool             // advisories are not permitted: verify every batch
}

// advisories is the subject of JetStream's advisories about the stream.
func (d *driver) advisories() string { return "$JS.EVENT.ADVISORY.STREAM.*." + d.cfg.Stream }

// markStale records that the stream may have changed.
func (p *pubEpoch) markStale() {
	p.mu.Lock()
	p.stale = true
	p.mu.Unlock()
}

// noAdvisories makes every batch verify its epoch.
func (p *pubEpoch) noAdvisories() {
	p.mu.Lock()
	p.always = true
	p.mu.Unlock()
}

// batchEpoch returns the epoch of the stream the appended messages (out:
// their acks) went to, with the stream for looking messages up.
func (d *driver) batchEpoch(ctx context.Context, msgs []*message.Message, out []engine.Appended) (jetstream.Stream, string, error) {
	p := &d.pubEpoch
	reconnects := d.pub.Stats().Reconnects
	seen := d.seenEpoch()
	p.mu.Lock()
	s, epoch, top := p.stream, p.epoch, p.maxSeq
	trusted := s != nil && !p.stale && !p.always && p.reconnects == reconnects && seen == epoch
	for i := range out {
		if !trusted {
			break
		}
		if out[i].Err == nil && !out[i].Duplicate {
			trusted = out[i].Pos.Lo > p.maxSeq
			top = max(top, out[i].Pos.Lo)
		}
	}
	if trusted {
		p.maxSeq = top
		p.mu.Unlock()
		return s, epoch, nil
	}
	p.stale = false // an advisory from here on marks it again
	p.mu.Unlock()
	return d.verifyEpoch(ctx, epoch, reconnects, msgs, out)
}

// verifyEpoch asks for the stream's info after the acks: if it is still
// the stream verified before (prev), it was all along and holds the
// batch; otherwise the batch's first and last messages must be in it.
func (d *driver) verifyEpoch(ctx context.Context, prev string, reconnects uint64, msgs []*message.Message, out []engine.Appended) (jetstream.Stream, string, error) {
	s, now, err := d.stream(ctx, d.pub.js, false)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			// Deleted since it took them, or a restarting server that has
			// not loaded it yet: they may or may not be in the log.
			return nil, "", fmt.Errorf("switchboard/broker/nats: the stream was not found after it took the messages: %w", core.ErrUnconfirmed)
		}
		return nil, "", d.unavailable("publish: stream info", cause(ctx, err))
	}
	if now != prev {
		first, last := -1, -1
		for i := range out {
			if out[i].Err == nil {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		for _, i := range []int{first, last} {
			if i < 0 {
				break // nothing appended
			}
			raw, err := s.GetMsg(ctx, out[i].Pos.Lo)
			if err != nil || !holds(raw, msgs[i], out[i].Duplicate) {
				return nil, "", fmt.Errorf("switchboard/broker/nats: appended while the stream was replaced (epoch %s, was %s): %w", now, prev, core.ErrUnconfirmed)
			}
		}
	}
	top := s.CachedInfo().State.LastSeq
	for i := range out {
		if out[i].Err == nil {
			top = max(top, out[i].Pos.Lo)
		}
	}
	p := &d.pubEpoch
	p.mu.Lock()
	p.stream, p.epoch, p.maxSeq, p.reconnects = s, now, top, reconnects
	p.mu.Unlock()
	return s, now, nil
}

// holds reports whether raw is msg, or, for a duplicate, the first
// message with msg's key.
func holds(raw *jetstream.RawStreamMsg, msg *message.Message, duplicate bool) bool {
	if duplicate {
		return raw.Header.Get(jetstream.MsgIDHeader) == msg.Metadata.Get(engine.MetadataKey)
	}
	return raw.Header.Get(wnats.WatermillUUIDHdr) == msg.UUID
}

// firstDigest reads the digest the first message with msg's key was
// published with (the engine tells a retry from a reused key by it); ""
// when that message cannot be read.
func firstDigest(ctx context.Context, s jetstream.Stream, pos engine.Pos, msg *message.Message) string {
	raw, err := s.GetMsg(ctx, pos.Lo)
	if err != nil || raw.Header.Get(jetstream.MsgIDHeader) != msg.Metadata.Get(engine.MetadataKey) {
		return ""
	}
	return raw.Header.Get(engine.MetadataDigest)
}
