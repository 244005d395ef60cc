package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
)

// historyFetchBytes bounds one history fetch response.
const historyFetchBytes = 1 << 20

// Since asks the partition's leader for the first offset whose record
// timestamp is at or after t (ListOffsets by time), on the history
// client; the position before it. A topic that does not exist yet has
// nothing to read: the log's start.
func (d *driver) Since(ctx context.Context, t time.Time) (engine.Pos, error) {
	lo, err := kadm.NewClient(d.hist).ListOffsetsAfterMilli(ctx, t.UnixMilli(), d.cfg.Topic)
	if err != nil {
		return engine.Pos{}, d.unavailable("offsets by time", err)
	}
	o, ok := lo.Lookup(d.cfg.Topic, partition)
	switch {
	case !ok || isUnknownTopic(o.Err):
		return engine.Pos{}, nil
	case o.Err != nil:
		return engine.Pos{}, d.unavailable("offsets by time", o.Err)
	case o.Offset <= 0:
		return engine.Pos{}, nil
	}
	return engine.Pos{Lo: uint64(o.Offset)}, nil // records from offset o on
}

// Range fetches up to limit records after `after` from the partition's
// leader through the history client, without waiting: one Fetch request
// at a time (no consumer, no fetch session), named by the topic ID read
// from metadata, so its records are of that epoch. It fetches on until
// it has limit records or reaches the high watermark of its first fetch.
// Chunk.Trimmed: the log starts after `after` (retention or
// DeleteRecords removed records after it).
func (d *driver) Range(ctx context.Context, after engine.Pos, limit int) (engine.Chunk, error) {
	// Cached metadata serves a storm of resumes; a missing leader is
	// checked against fresh metadata.
	tm, err := d.metadata(ctx, d.hist, true)
	if err != nil || tm.leader < 0 {
		tm, err = d.metadata(ctx, d.hist, false)
	}
	switch {
	case isUnknownTopic(err):
		return engine.Chunk{}, nil // no log: nothing to recover
	case err != nil:
		return engine.Chunk{}, d.unavailable("history: metadata", err)
	case tm.leader < 0:
		return engine.Chunk{}, d.unavailable("history", fmt.Errorf("partition %d has no leader", partition))
	}
	chunk := engine.Chunk{Epoch: tm.epoch.String()}
	from, ok := nextOffset(after)
	if !ok {
		return chunk, nil // no record comes after it
	}
	end := int64(-1) // the high watermark of the first fetch
	reset := false   // from was moved to the log start once
	for len(chunk.Records) < limit && (end < 0 || from < end) {
		fp, id, next, err := d.fetch(ctx, tm, from)
		if err == nil {
			err = fp.Err
		}
		switch {
		case isUnknownTopic(err):
			// Deleted (and maybe recreated) since the metadata was read.
			fresh, merr := d.metadata(ctx, d.hist, false)
			if merr != nil && !isUnknownTopic(merr) {
				return engine.Chunk{}, d.unavailable("history: metadata", merr)
			}
			return engine.Chunk{Epoch: fresh.epoch.String()}, nil
		case errors.Is(err, kerr.OffsetOutOfRange) && !reset:
			start, hw, oerr := d.offsets(ctx, d.hist)
			switch {
			case oerr != nil:
				return engine.Chunk{}, d.unavailable("history: offsets", oerr)
			case from < start:
				chunk.Trimmed, from, reset = true, start, true
				continue
			case from >= hw:
				return chunk, nil // nothing after it
			}
			return engine.Chunk{}, d.unavailable("history: fetch", err)
		case err != nil:
			return engine.Chunk{}, d.unavailable("history: fetch", err)
		}
		if !id.IsZero() && id != tm.epoch {
			return engine.Chunk{Epoch: id.String()}, nil // recreated since the metadata
		}
		if end < 0 {
			end = fp.HighWatermark
		}
		if fp.LogStartOffset > from {
			chunk.Trimmed = true
		}
		for _, rec := range fp.Records {
			if rec.Offset < from || rec.Offset >= end || len(chunk.Records) == limit {
				continue
			}
			chunk.Records = append(chunk.Records, decode(rec))
		}
		if n := len(chunk.Records); n > 0 {
			next = max(next, chunk.Records[n-1].Pos.Lo) // Lo is the offset after the record
		}
		if int64(next) <= from {
			if from < end {
				return engine.Chunk{}, d.unavailable("history: fetch", fmt.Errorf("no progress at offset %d below high watermark %d", from, end))
			}
			break
		}
		from = int64(next)
	}
	return chunk, nil
}

// fetch issues one Fetch of the partition from offset to its leader and
// decodes it with franz-go, returning the partition, the topic ID the
// response names (zero before Fetch v13) and the offset to fetch next.
func (d *driver) fetch(ctx context.Context, tm topicMeta, offset int64) (kgo.FetchPartition, ids.Epoch, uint64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = historyFetchBytes
	req.SessionID = 0
	req.SessionEpoch = -1 // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = d.cfg.Topic
	rt.TopicID = tm.epoch
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = historyFetchBytes
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	kresp, err := d.hist.Broker(int(tm.leader)).Request(ctx, req)
	if err != nil {
		return kgo.FetchPartition{}, ids.Epoch{}, 0, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kgo.FetchPartition{}, ids.Epoch{}, 0, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != "" && t.Topic != d.cfg.Topic {
			continue
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Partition != partition {
				continue
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:    offset,
				Topic:     d.cfg.Topic,
				Partition: partition,
			}, p, kgo.DefaultDecompressor(), nil)
			return fp, ids.Epoch(t.TopicID), uint64(max(next, 0)), nil
		}
	}
	return kgo.FetchPartition{}, ids.Epoch{}, 0, fmt.Errorf("partition %d missing from the fetch response", partition)
}
