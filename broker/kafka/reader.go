package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
)

// epochCheckInterval bounds how often fetch errors make the reader ask
// for the topic's ID (a replaced producer, or offsets going back, ask at
// once).
const epochCheckInterval = time.Second

// Read returns the records after `after` from the reader's own consumer,
// which fetches the partition directly (no consumer group) from an exact
// offset and keeps fetching between calls; it is placed again only when
// `after` or the epoch is not where the last Read left it. It waits up to
// readBlock for records.
//
// Every fetch names the topic ID its records come from: records of
// another topic (recreated under the reader) are not returned; the batch
// names the new epoch instead, and the next Read starts that log from its
// start. franz-go stops fetching a topic whose ID changed, so a fetch
// error makes the reader ask for the topic's ID too.
func (d *driver) Read(ctx context.Context, epoch string, after engine.Pos, max int) (engine.Batch, error) {
	next, ok := nextOffset(after)
	if !ok {
		return engine.Batch{}, fmt.Errorf("switchboard/broker/kafka: read after %s: not a Kafka position", after)
	}
	cl, err := d.consumer(epoch, next)
	if err != nil {
		return engine.Batch{}, err
	}
	if d.recheck.Swap(false) {
		if cur, err := d.topicEpoch(ctx, cl); err == nil && cur != epoch {
			return engine.Batch{Epoch: cur}, nil
		}
	}
	pctx, cancel := context.WithTimeout(ctx, readBlock)
	fs := cl.PollRecords(pctx, max)
	cancel()
	switch {
	case ctx.Err() != nil:
		return engine.Batch{}, ctx.Err()
	case fs.IsClientClosed():
		return engine.Batch{}, broker.ErrClosed
	}
	batch := engine.Batch{Epoch: epoch}
	var fetchErr error
	fs.EachError(func(_ string, _ int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			fetchErr = err
		}
	})
	var other ids.Epoch // records came from this topic, not epoch's
	back := false       // offsets went back: the topic may have been recreated
	fs.EachTopic(func(ft kgo.FetchTopic) {
		if ft.Topic != d.cfg.Topic {
			return
		}
		id := ids.Epoch(ft.TopicID)
		for _, fp := range ft.Partitions {
			if fp.Partition != partition || len(fp.Records) == 0 {
				continue
			}
			if !id.IsZero() && id.String() != epoch {
				other = id
				continue
			}
			for _, rec := range fp.Records {
				if rec.Offset < d.rdNext {
					back = true // read before: not again
					continue
				}
				if len(batch.Records) == 0 && rec.Offset > next && fp.LogStartOffset > next {
					batch.Gap = true // retention dropped records before they were read
				}
				batch.Records = append(batch.Records, decode(rec))
				d.rdNext = rec.Offset + 1
			}
		}
	})
	switch {
	case !other.IsZero():
		return engine.Batch{Epoch: other.String()}, nil
	case len(batch.Records) > 0 && !back:
		return batch, nil // of epoch's topic: the fetch named it, or offsets carried on
	case back || fetchErr != nil && time.Since(d.lastCheck) >= epochCheckInterval:
		d.lastCheck = time.Now()
		if cur, err := d.topicEpoch(ctx, cl); err == nil && cur != epoch {
			return engine.Batch{Epoch: cur}, nil
		}
	}
	if len(batch.Records) > 0 {
		return batch, nil
	}
	if fetchErr != nil {
		return engine.Batch{}, d.unavailable("read", fetchErr)
	}
	if err := d.fetches.stale(d.cfg.RequestTimeout + fetchMaxWait); err != nil {
		return engine.Batch{}, d.unavailable("read", err)
	}
	return batch, nil
}

// consumer returns the reader's consumer placed at offset next of
// epoch's log: the one it has when that is where it is, otherwise a new
// one (consuming from an exact offset is set when a client is made, and
// a new client also follows a recreated topic, which franz-go's never
// do).
func (d *driver) consumer(epoch string, next int64) (*kgo.Client, error) {
	if d.rd != nil && d.rdEpoch == epoch && d.rdNext == next {
		return d.rd, nil
	}
	cl, err := kgo.NewClient(append(d.clientOptions(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{d.cfg.Topic: {partition: kgo.NewOffset().At(next)}}),
		// Out of range: behind retention (the oldest record still there
		// is the next one; Read reports the gap), or a recreated topic.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithHooks(&d.fetches),
	)...)
	if err != nil {
		return nil, fmt.Errorf("switchboard/broker/kafka: reader: %w", err)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cl.Close()
		return nil, broker.ErrClosed
	}
	old := d.rd
	d.rd, d.rdEpoch, d.rdNext = cl, epoch, next
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.fetches.reset()
	return cl, nil
}

// topicEpoch asks for the topic's ID, creating the topic if it is gone
// (as Head does: the new topic is a new epoch).
func (d *driver) topicEpoch(ctx context.Context, cl *kgo.Client) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	tm, err := d.metadata(cctx, cl, false)
	if isUnknownTopic(err) {
		tm, err = d.ensureTopic(cctx, cl)
	}
	if err != nil {
		return "", err
	}
	return tm.epoch.String(), nil
}

// fetchHealth is the reader's view of Kafka, kept by franz-go hooks on
// its consumer: a completed fetch is proof of health (an idle consumer
// completes one every fetchMaxWait).
type fetchHealth struct {
	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
}

var (
	_ kgo.HookBrokerConnect = (*fetchHealth)(nil)
	_ kgo.HookBrokerE2E     = (*fetchHealth)(nil)
)

// OnBrokerConnect notes a failed dial.
func (h *fetchHealth) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.mu.Lock()
		h.lastErr = err
		h.mu.Unlock()
	}
}

// OnBrokerE2E notes a fetch's outcome.
func (h *fetchHealth) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != int16(kmsg.Fetch) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := e2e.Err(); err != nil {
		h.lastErr = err
		return
	}
	h.lastOK, h.lastErr = time.Now(), nil
}

// reset starts the clock again, for a new consumer.
func (h *fetchHealth) reset() {
	h.mu.Lock()
	h.lastOK, h.lastErr = time.Now(), nil
	h.mu.Unlock()
}

// stale returns an error when no fetch completed for longer than after.
func (h *fetchHealth) stale(after time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	since := time.Since(h.lastOK)
	if since <= after {
		return nil
	}
	cause := h.lastErr
	if cause == nil {
		cause = errors.New("no fetch completed")
	}
	return &staleError{since: since.Round(time.Millisecond), cause: cause}
}

type staleError struct {
	since time.Duration
	cause error
}

func (e *staleError) Error() string {
	return "no fetch for " + e.since.String() + ": " + e.cause.Error()
}
func (e *staleError) Unwrap() error { return e.cause }
