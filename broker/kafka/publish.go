package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
)

// producer is one idempotent franz-go producer and what the driver knows
// of where its records go.
type producer struct {
	cl *kgo.Client

	// epoch is the topic ID its records go to, learnt from a produce
	// bracketed by two metadata reads that named the same topic ID; ""
	// until then, and again after any failed record (the client may then
	// restart its sequence numbers). Afterwards a record cannot reach
	// another topic: franz-go pins the topic ID it first saw (Produce v13
	// names it; before that, a recreated topic refuses the pinned
	// producer's next sequence number, and StopProducerOnDataLossDetected
	// keeps the client from starting over by itself). The committer's
	// alone.
	epoch string
}

// newProducer makes an idempotent producer (acks from all in-sync
// replicas) that sends only when Append flushes it, to partition 0,
// uncompressed (as watermill-kafka's Sarama producer did), failing a
// record after RequestTimeout or PublishRetries, and never starting its
// sequence numbers over by itself when the cluster lost its state.
func (d *driver) newProducer() (*producer, error) {
	cl, err := kgo.NewClient(append(d.clientOptions(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ManualFlushing(),
		kgo.StopProducerOnDataLossDetected(),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProduceRequestTimeout(d.cfg.RequestTimeout),
		kgo.RecordDeliveryTimeout(d.cfg.RequestTimeout),
		kgo.RecordRetries(max(d.cfg.PublishRetries, 0)),
	)...)
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl}, nil
}

// Append produces msgs, in order, as one batch: the producer buffers
// them and one Flush sends them in one produce request (size
// permitting). Kafka keeps no idempotency keys, so every message is
// appended (Duplicate is never set) and the engine's reader drops a
// repeated key; window is unused.
//
// Nothing is produced twice: the producer is idempotent, and the only
// second attempt is for records the cluster refused because it no longer
// knew the producer (restarted without its state, or the topic
// recreated), through a new producer. A produce that outlasts DialTimeout
// + RequestTimeout fails Append with its outcome unknown, and the
// producer, which might still deliver those records, is replaced.
func (d *driver) Append(ctx context.Context, msgs []*message.Message, _ time.Duration) (string, []engine.Appended, error) {
	out := make([]engine.Appended, len(msgs))
	recs := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		rec, err := encode(d.cfg.Topic, msg)
		if err != nil {
			out[i].Err = err
			continue
		}
		recs[i] = rec
	}
	p, err := d.producer()
	if err != nil {
		return "", nil, err
	}
	known := p.epoch
	epoch, errs, err := d.produce(ctx, p, recs)
	if err != nil {
		return "", nil, err
	}
	if failed := failedOnly(recs, errs); failed != nil && d.lostProducer(ctx, p, known, errs) {
		np, err := d.replace(p, "the cluster no longer knew its idempotence state (restarted without it, or the topic was recreated)")
		if err != nil {
			return "", nil, err
		}
		again, againErrs, err := d.produce(ctx, np, failed)
		if err != nil {
			return "", nil, err
		}
		if epoch != "" && again != "" && again != epoch {
			return "", nil, fmt.Errorf("switchboard/broker/kafka: produce: %w", errTopicChanged)
		}
		if epoch == "" {
			epoch = again
		}
		for i, rec := range failed {
			if rec != nil {
				recs[i], errs[i] = rec, againErrs[i]
			}
		}
	}
	var firstErr error
	for i, rec := range recs {
		switch {
		case rec == nil: // not encoded: out[i].Err is set
		case errs[i] != nil:
			out[i].Err = d.recordError(errs[i])
		default:
			out[i].Pos = posOf(rec.Offset)
			continue
		}
		if firstErr == nil {
			firstErr = out[i].Err
		}
	}
	if epoch == "" { // nothing appended
		return "", nil, firstErr
	}
	return epoch, out, nil
}

// errTopicChanged: the topic's ID changed while records were produced,
// so the log they went to is unknown.
var errTopicChanged = errors.New("the topic was recreated during the publish: the messages may be in either log")

// producer returns the current producer.
func (d *driver) producer() (*producer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, broker.ErrClosed
	}
	return d.pub, nil
}

// produce produces recs (nil entries skipped) through p and flushes them,
// returning each record's error and the epoch of those appended ("" when
// none was). An error means their outcome is unknown.
func (d *driver) produce(ctx context.Context, p *producer, recs []*kgo.Record) (string, []error, error) {
	var pre string
	if p.epoch == "" {
		tm, err := d.metadata(ctx, p.cl, false)
		if err != nil {
			return "", nil, d.unavailable("produce: topic metadata", err)
		}
		pre = tm.epoch.String()
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout+d.cfg.RequestTimeout)
	defer cancel()
	errs := make([]error, len(recs))
	done := make(chan struct{}, len(recs))
	n := 0
	for i, rec := range recs {
		if rec == nil {
			continue
		}
		n++
		p.cl.Produce(pctx, rec, func(_ *kgo.Record, err error) {
			errs[i] = err
			done <- struct{}{}
		})
	}
	ferr := p.cl.Flush(pctx)
	for ; n > 0 && ferr == nil; n-- {
		select {
		case <-done:
		case <-pctx.Done():
			ferr = pctx.Err()
		}
	}
	if ferr != nil {
		// Records not settled yet (unsent while the cluster is away, or in
		// flight): only this producer could still append them. Retire it,
		// so later publishes do not queue behind them.
		if _, err := d.replace(p, "a publish timed out before its records were settled"); errors.Is(err, broker.ErrClosed) {
			return "", nil, err
		}
		return "", nil, d.unavailable("produce", ferr)
	}
	appended, failed := false, false
	for i, rec := range recs {
		if rec != nil {
			appended = appended || errs[i] == nil
			failed = failed || errs[i] != nil
		}
	}
	epoch := p.epoch
	if appended && epoch == "" {
		// The records went to the topic named before and after the
		// produce: a topic ID never comes back.
		tm, err := d.metadata(ctx, p.cl, false)
		if err != nil {
			return "", nil, d.unavailable("produce: topic metadata after the produce", err)
		}
		if tm.epoch.String() != pre {
			_, _ = d.replace(p, "the topic was recreated during a publish")
			return "", nil, fmt.Errorf("switchboard/broker/kafka: produce: %w", errTopicChanged)
		}
		epoch, p.epoch = pre, pre
	}
	if failed {
		p.epoch = ""
	}
	if !appended {
		epoch = ""
	}
	return epoch, errs, nil
}

// failedOnly returns fresh copies of the failed records of recs, at
// their indexes (nil elsewhere), or nil when none failed. Copies: the old
// producer may still hold the originals, and a record's timestamp (set
// by the first attempt) starts its delivery timeout.
func failedOnly(recs []*kgo.Record, errs []error) []*kgo.Record {
	var out []*kgo.Record
	for i, rec := range recs {
		if rec != nil && errs[i] != nil {
			if out == nil {
				out = make([]*kgo.Record, len(recs))
			}
			out[i] = &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
		}
	}
	return out
}

// lostProducer reports whether records failed because the cluster no
// longer knows p: it refused p's sequence numbers or producer ID (it lost
// its state), or p's topic is gone (recreated). Those records were not
// appended. A failure without such a sign (a record that timed out while
// the client waited for metadata) is checked against the topic's ID when
// p knew its epoch (known).
func (d *driver) lostProducer(ctx context.Context, p *producer, known string, errs []error) bool {
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, kerr.OutOfOrderSequenceNumber), errors.Is(err, kerr.UnknownProducerID),
			errors.Is(err, kerr.InvalidProducerEpoch), errors.Is(err, kerr.InvalidProducerIDMapping),
			errors.Is(err, kerr.UnknownTopicID):
			return true
		}
	}
	if known == "" {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	tm, err := d.metadata(cctx, p.cl, false)
	return err == nil && tm.epoch.String() != known
}

// recordError is the error of one record that was not appended.
func (d *driver) recordError(err error) error {
	if isUnreachable(err) {
		return d.unavailable("produce", err)
	}
	return fmt.Errorf("switchboard/broker/kafka: produce: %w", err)
}

// replace swaps old for a new producer, unless another call did already,
// and closes old in the background. It tells the reader to check the
// topic's ID: a producer is replaced when the topic may have changed.
func (d *driver) replace(old *producer, why string) (*producer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, broker.ErrClosed
	}
	if d.pub != old {
		return d.pub, nil
	}
	np, err := d.newProducer()
	if err != nil {
		return nil, fmt.Errorf("switchboard/broker/kafka: new producer: %w", err)
	}
	d.pub = np
	d.retired.Add(1)
	go func() {
		defer d.retired.Done()
		old.cl.Close()
	}()
	d.recheck.Store(true)
	d.log.Info("producer replaced: " + why)
	return np, nil
}
