package kafka

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker/engine"
)

// newDriver is a driver on a kfake cluster of its own, closed when the
// test ends.
func newDriver(t *testing.T, topic string) (*driver, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := Config{Brokers: c.ListenAddrs(), Topic: topic, DialTimeout: time.Second, RequestTimeout: time.Second}
	cfg.setDefaults()
	d, err := open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, c
}

func keyedMessage(key string) *message.Message {
	msg := message.NewMessage("u-"+key, []byte("{}"))
	msg.Metadata.Set(engine.MetadataKey, key)
	return msg
}

// TestAppendKeepsRepeatedKeys: Kafka keeps no idempotency keys: a message
// appended twice with one key is in the log twice, never reported a
// Duplicate (the engine's reader drops the second), and one Append of a
// batch places its messages one after the other in one epoch.
func TestAppendKeepsRepeatedKeys(t *testing.T) {
	d, _ := newDriver(t, "append")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	epoch, head, err := d.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []engine.Appended
	for range 2 {
		e, res, err := d.Append(ctx, []*message.Message{keyedMessage("k"), keyedMessage("other")}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if e != epoch {
			t.Fatalf("Append's epoch %q, Head's %q", e, epoch)
		}
		got = append(got, res...)
	}
	for i, a := range got {
		if a.Err != nil || a.Duplicate || a.Pos != (engine.Pos{Lo: head.Lo + uint64(i) + 1}) {
			t.Errorf("append %d = %+v, want position %d, not a duplicate", i, a, head.Lo+uint64(i)+1)
		}
	}
	chunk, err := d.Range(ctx, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if chunk.Epoch != epoch || chunk.Trimmed || len(chunk.Records) != 4 {
		t.Fatalf("Range = epoch %q trimmed %v, %d records; want %q false 4", chunk.Epoch, chunk.Trimmed, len(chunk.Records), epoch)
	}
	for i, rec := range chunk.Records {
		if rec.Pos != got[i].Pos || rec.Msg.Metadata.Get(engine.MetadataKey) != []string{"k", "other"}[i%2] {
			t.Errorf("record %d at %v with key %q", i, rec.Pos, rec.Msg.Metadata.Get(engine.MetadataKey))
		}
	}
}

// TestProducerReplacedWhenForgotten: when the cluster refuses the
// producer's sequence numbers (it lost its idempotence state: a restart
// without it), the refused records were not appended: Append produces
// them once more through a new producer, and the log holds each message
// once.
func TestProducerReplacedWhenForgotten(t *testing.T) {
	d, cluster := newDriver(t, "forgotten")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, head, err := d.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Append(ctx, []*message.Message{keyedMessage("a")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	old := d.pub
	cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.OutOfOrderSequenceNumber.Code
				sp.BaseOffset, sp.LogStartOffset = -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true // once: the next produce request reaches the cluster
	})
	_, res, err := d.Append(ctx, []*message.Message{keyedMessage("b"), keyedMessage("c")}, time.Minute)
	if err != nil {
		t.Fatalf("Append after the cluster forgot the producer: %v", err)
	}
	if d.pub == old {
		t.Error("the producer was not replaced")
	}
	for i, a := range res {
		if a.Err != nil || a.Pos != (engine.Pos{Lo: head.Lo + uint64(i) + 2}) {
			t.Errorf("append %d = %+v, want position %d", i, a, head.Lo+uint64(i)+2)
		}
	}
	chunk, err := d.Range(ctx, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, rec := range chunk.Records {
		keys = append(keys, rec.Msg.Metadata.Get(engine.MetadataKey))
	}
	if strings.Join(keys, " ") != "a b c" {
		t.Errorf("the log holds %v, want [a b c]", keys)
	}
}

// TestReadAfterTrimmed: records after the reader's position that the log
// dropped before they were read (retention during an outage) are
// reported: Read's Gap, Range's Trimmed; what is left is returned.
func TestReadAfterTrimmed(t *testing.T) {
	d, cluster := newDriver(t, "trimmed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	epoch, head, err := d.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Append(ctx, []*message.Message{keyedMessage("a"), keyedMessage("b"), keyedMessage("c")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := cluster.DeleteRecords(d.cfg.Topic, partition, 2); err != nil {
		t.Fatal(err)
	}
	var batch engine.Batch
	for len(batch.Records) == 0 { // bounded by ctx: Read waits at most readBlock
		if batch, err = d.Read(ctx, epoch, head, 10); err != nil {
			t.Fatal(err)
		}
	}
	if !batch.Gap || batch.Epoch != epoch || len(batch.Records) != 1 || batch.Records[0].Pos != posOf(2) {
		t.Errorf("Read after trimmed records = gap %v epoch %q, %d records from %v; want a gap, %q, the record at offset 2",
			batch.Gap, batch.Epoch, len(batch.Records), batch.Records[0].Pos, epoch)
	}
	chunk, err := d.Range(ctx, head, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !chunk.Trimmed || len(chunk.Records) != 1 || chunk.Records[0].Pos != posOf(2) {
		t.Errorf("Range = trimmed %v, %d records; want trimmed, the record at offset 2", chunk.Trimmed, len(chunk.Records))
	}
	if chunk, err = d.Range(ctx, posOf(1), 10); err != nil || chunk.Trimmed || len(chunk.Records) != 1 {
		t.Errorf("Range after the last trimmed record = trimmed %v, %d records, %v; want complete, 1", chunk.Trimmed, len(chunk.Records), err)
	}
}
