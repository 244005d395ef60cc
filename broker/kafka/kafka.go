package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
	"github.com/switchboard-dev/switchboard/core"
)

// ErrUnavailable is wrapped by errors caused by Kafka being unreachable:
// from New when the cluster cannot be reached at start, from Publish and
// History during an outage, and from Healthy while the reader cannot fetch.
var ErrUnavailable = errors.New("switchboard/broker/kafka: unavailable")

// partition is the one partition the driver produces to and reads. A topic
// created with more partitions (by hand) still works: the others are
// ignored.
const partition int32 = 0

// Broker is the Kafka core.Broker. Create it with New.
type Broker struct {
	cfg   Config
	log   *slog.Logger
	addrs string // the seed brokers, for messages

	admin     *kgo.Client // metadata, offsets and History's fetches
	adm       *kadm.Client
	publisher *wkafka.Publisher // Sarama SyncProducer, idempotent
	codec     wkafka.DefaultMarshaler

	// pubMu is held shared by each produce in flight and exclusively by
	// Close before it closes the publisher: a Sarama producer panics on a
	// send after Close.
	pubMu  sync.RWMutex
	closed atomic.Bool

	mu      sync.Mutex // guards what follows
	started bool
	confirm broker.Confirmations // watermill UUID → id, for Publish
	stop    context.CancelFunc   // ends the reader
	done    chan struct{}        // closed when the reader has returned
	reader  *kgo.Client
	rd      *reader
	closing chan struct{} // closed by Close

	health    health
	delivered progress
}

// Interface guards.
var _ core.Broker = (*Broker)(nil)

// New validates cfg, connects to the cluster, creates the topic if it does
// not exist (one partition, Retention, ReplicationFactor) and starts the
// producer. An unreachable cluster is an error wrapping ErrUnavailable; a
// bad cfg one wrapping ErrInvalidConfig. Call Start to begin delivering,
// and Close to release the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	b := &Broker{
		cfg:     cfg,
		log:     logger.With("broker", "kafka", "topic", cfg.Topic),
		addrs:   strings.Join(cfg.Brokers, ","),
		closing: make(chan struct{}),
	}
	b.health.init(b, cfg.RequestTimeout+fetchMaxWait)
	admin, err := kgo.NewClient(b.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	b.admin, b.adm = admin, kadm.NewClient(admin)

	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.RequestTimeout)
	defer cancel()
	if err := admin.Ping(cctx); err != nil {
		admin.Close()
		return nil, b.unreachable(err)
	}
	if err := b.ensureTopic(cctx); err != nil {
		admin.Close()
		return nil, err
	}
	b.publisher, err = b.newPublisher()
	if err != nil {
		admin.Close()
		return nil, b.unreachable(err)
	}
	return b, nil
}

// clientOptions are the franz-go settings shared by the admin client and
// the reader, chosen deliberately: short dials, a bounded wait on top of
// each request, a short exponential backoff, and retries bounded in time
// so an admin request (metadata, offsets) fails within about
// RequestTimeout during an outage instead of kgo's 30s.
func (b *Broker) clientOptions() []kgo.Opt {
	cfg := b.cfg
	return []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.RequestTimeoutOverhead(cfg.RequestTimeout),
		kgo.RetryTimeout(cfg.RequestTimeout),
		kgo.RetryBackoffFn(backoff(cfg.RetryBackoff, cfg.MaxRetryBackoff)),
		kgo.MetadataMinAge(time.Second), // react to leader moves and a recreated topic within a second
	}
}

// backoff doubles from first up to limit.
func backoff(first, limit time.Duration) func(int) time.Duration {
	return func(tries int) time.Duration {
		d := first
		for i := 1; i < tries && d < limit; i++ {
			d *= 2
		}
		return min(d, limit)
	}
}

// saramaConfig is the producer's configuration, chosen deliberately:
// idempotent (so Sarama's retries never append a message twice, which
// needs acks from all in-sync replicas and one request in flight), few
// and short retries, bounded dials and reads, no topic auto-creation (New
// creates the topic with the configured settings), and every record to
// partition 0 (watermill's marshaler leaves the partition at 0).
func saramaConfig(cfg Config) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = cfg.ClientID
	c.Version = sarama.V2_8_0_0 // topic IDs (KIP-516) exist from 2.8
	c.Net.DialTimeout = cfg.DialTimeout
	c.Net.ReadTimeout = cfg.RequestTimeout
	c.Net.WriteTimeout = cfg.RequestTimeout
	c.Net.MaxOpenRequests = 1
	c.Metadata.AllowAutoTopicCreation = false
	c.Metadata.Full = false
	c.Metadata.Retry.Max = 2
	c.Metadata.Retry.Backoff = cfg.RetryBackoff
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Timeout = cfg.RequestTimeout
	c.Producer.Idempotent = true
	c.Producer.Retry.Max = max(cfg.PublishRetries, 0)
	c.Producer.Retry.Backoff = cfg.RetryBackoff
	c.Producer.Partitioner = sarama.NewManualPartitioner
	if c.Producer.Retry.Max == 0 {
		c.Producer.Idempotent = false // Sarama requires retries for idempotence
	}
	return c
}

// ensureTopic creates the topic if it is missing and checks it has an ID.
func (b *Broker) ensureTopic(ctx context.Context) error {
	id, parts, err := b.topicID(ctx)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		configs := map[string]*string{}
		if b.cfg.Retention > 0 {
			ms := fmt.Sprint(b.cfg.Retention.Milliseconds())
			configs["retention.ms"] = &ms
		}
		rf := int16(-1)
		if b.cfg.ReplicationFactor > 0 {
			rf = int16(b.cfg.ReplicationFactor)
		}
		res, cerr := b.adm.CreateTopic(ctx, 1, rf, configs, b.cfg.Topic)
		if cerr == nil {
			cerr = res.Err
		}
		if cerr != nil && !errors.Is(cerr, kerr.TopicAlreadyExists) {
			if isUnreachable(cerr) {
				return b.unreachable(cerr)
			}
			return fmt.Errorf("switchboard/broker/kafka: create topic %q at %s: %w", b.cfg.Topic, b.addrs, cerr)
		}
		b.log.Info("created topic", "partitions", 1, "replication_factor", rf, "retention", b.cfg.Retention)
		id, parts, err = b.topicID(ctx)
	}
	if err != nil {
		if isUnreachable(err) {
			return b.unreachable(err)
		}
		return fmt.Errorf("switchboard/broker/kafka: topic %q at %s: %w", b.cfg.Topic, b.addrs, err)
	}
	if id.IsZero() {
		return fmt.Errorf("switchboard/broker/kafka: topic %q at %s has no topic ID: Kafka 2.8 or newer is required", b.cfg.Topic, b.addrs)
	}
	if parts > 1 {
		b.log.Warn("topic has more than one partition; the driver uses partition 0 only", "partitions", parts)
	}
	return nil
}

// topicID reads the topic's ID and partition count from fresh metadata.
// A missing topic is an error wrapping kerr.UnknownTopicOrPartition.
func (b *Broker) topicID(ctx context.Context) (ids.Epoch, int, error) {
	tm, err := b.metadata(ctx, false)
	return tm.epoch, tm.partitions, err
}

// topicMeta is what the driver needs from a metadata response.
type topicMeta struct {
	epoch      ids.Epoch
	leader     int32 // of the partition the driver uses; -1 if none
	partitions int
}

// metadata asks for the topic's metadata, from franz-go's cache (at most
// a second old) when cached, else from the cluster. A missing topic is an
// error wrapping kerr.UnknownTopicOrPartition.
func (b *Broker) metadata(ctx context.Context, cached bool) (topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(b.cfg.Topic)
	req.Topics = append(req.Topics, rt)
	var resp *kmsg.MetadataResponse
	var err error
	if cached {
		resp, err = b.admin.RequestCachedMetadata(ctx, req, time.Second)
	} else {
		resp, err = req.RequestWith(ctx, b.admin)
	}
	if err != nil {
		return topicMeta{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != b.cfg.Topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return topicMeta{}, err
		}
		tm := topicMeta{epoch: ids.Epoch(t.TopicID), leader: -1, partitions: len(t.Partitions)}
		found := false
		for _, p := range t.Partitions {
			if p.Partition == partition {
				found = true
				if kerr.ErrorForCode(p.ErrorCode) == nil {
					tm.leader = p.Leader
				}
			}
		}
		if !found {
			return topicMeta{}, fmt.Errorf("partition %d: %w", partition, kerr.UnknownTopicOrPartition)
		}
		return tm, nil
	}
	return topicMeta{}, kerr.UnknownTopicOrPartition
}

// offsets lists the partition's log start and end (high watermark).
func (b *Broker) offsets(ctx context.Context) (start, end int64, err error) {
	for _, list := range []struct {
		f   func(context.Context, ...string) (kadm.ListedOffsets, error)
		out *int64
	}{{b.adm.ListStartOffsets, &start}, {b.adm.ListEndOffsets, &end}} {
		lo, err := list.f(ctx, b.cfg.Topic)
		if err != nil {
			return 0, 0, err
		}
		o, ok := lo.Lookup(b.cfg.Topic, partition)
		if !ok {
			return 0, 0, kerr.UnknownTopicOrPartition
		}
		if o.Err != nil {
			return 0, 0, o.Err
		}
		*list.out = o.Offset
	}
	return start, end, nil
}

// isUnreachable tells a connection failure from a refusal by Kafka.
func isUnreachable(err error) bool {
	var kerrErr *kerr.Error
	return err != nil && !errors.As(err, &kerrErr)
}

// unreachable is the one-line error for a cluster that cannot be reached.
func (b *Broker) unreachable(err error) error {
	return &unavailableError{
		msg:   fmt.Sprintf("switchboard/broker/kafka: cannot reach kafka at %s: %v (is Kafka running? check --broker-url)", b.addrs, oneLine(err)),
		cause: err,
	}
}

// unavailable wraps an operation's failure during an outage.
func (b *Broker) unavailable(op string, err error) error {
	return &unavailableError{msg: fmt.Sprintf("switchboard/broker/kafka: %s: kafka at %s: %v", op, b.addrs, oneLine(err)), cause: err}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// unavailableError prints one line and matches both ErrUnavailable and
// its cause (a context error, a net.Error, a Kafka error).
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string   { return e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// Start pins the reader at the partition's end offset (so a restarted
// node replays nothing to live clients, and nothing published after Start
// returns is missed), takes the topic ID as the epoch, and starts the
// reader. The reader runs until Close or until ctx ends.
func (b *Broker) Start(ctx context.Context, deliver func(core.Delivery)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if b.started {
		return errors.New("switchboard/broker/kafka: Start called twice")
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.DialTimeout+b.cfg.RequestTimeout)
	defer cancel()
	ep, _, err := b.topicID(cctx)
	if err != nil {
		return b.unavailable("start: topic metadata", err)
	}
	_, end, err := b.offsets(cctx)
	if err != nil {
		return b.unavailable("start: end offset", err)
	}
	b.delivered.advance(ep, end)
	b.health.ok()
	cl, err := kgo.NewClient(append(b.clientOptions(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{b.cfg.Topic: {partition: kgo.NewOffset().At(end)}}),
		// Out of range: behind retention, or the topic was recreated. Either
		// way the oldest record still there is the next one to deliver.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithHooks(&b.health),
	)...)
	if err != nil {
		return fmt.Errorf("switchboard/broker/kafka: reader: %w", err)
	}
	rctx, rcancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, rcancel)
	b.started = true
	b.reader = cl
	b.stop = func() { stop(); rcancel() }
	b.done = make(chan struct{})
	r := &reader{b: b, cl: cl, deliver: deliver, epoch: ep, next: end}
	b.rd = r
	go func() {
		defer close(b.done)
		defer rcancel()
		r.run(rctx)
	}()
	b.log.Debug("reader started", "epoch", ep.String(), "from", end)
	return nil
}

// Publish appends env to the topic through watermill-kafka's publisher and
// returns once this node's reader has read the record back, with its id
// (also set in env.ID). It fails with an error wrapping ErrUnavailable
// when Kafka does not take the message (after PublishRetries) or ctx ends
// first; in the latter case the message may still be appended and
// delivered. The producer is idempotent, so a message is never appended
// twice.
func (b *Broker) Publish(ctx context.Context, p core.Publication) (core.Published, error) {
	id, err := b.publishOne(ctx, p.Channel, p.Envelope)
	return core.Published{ID: id}, err
}

func (b *Broker) publishOne(ctx context.Context, channel string, env *core.Envelope) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	env.ID = ""
	msg := broker.NewMessage(channel, env)
	msg.SetContext(ctx)

	b.mu.Lock()
	started, closing := b.started, b.closing
	b.mu.Unlock()
	if b.closed.Load() {
		return "", broker.ErrClosed
	}
	if !started {
		return "", errors.New("switchboard/broker/kafka: Publish before Start")
	}
	confirmed, done := b.confirm.Expect(msg.UUID)
	defer done()

	// Sarama's SendMessage takes no context: run it aside so Publish
	// honours ctx; it ends within Sarama's own bounds and Close waits.
	sent := make(chan error, 1)
	go func() { sent <- b.send(msg) }()
	select {
	case err := <-sent:
		if errors.Is(err, broker.ErrClosed) {
			return "", err
		}
		if err != nil {
			return "", b.unavailable("publish", err)
		}
	case <-closing:
		return "", broker.ErrClosed
	case <-ctx.Done():
		return "", b.unavailable("publish", ctx.Err())
	}
	id, err := broker.AwaitConfirmation(ctx, confirmed, closing, "kafka")
	if err == nil {
		env.ID = id
	}
	return id, err
}

// send produces msg. A producer whose idempotence state the cluster no
// longer knows (the topic was deleted and recreated, or the producer ID
// expired) has its message refused, not appended: send replaces the
// producer and tries once more.
func (b *Broker) send(msg *message.Message) error {
	b.pubMu.RLock()
	if b.closed.Load() {
		b.pubMu.RUnlock()
		return broker.ErrClosed
	}
	pub := b.publisher
	err := pub.Publish(b.cfg.Topic, msg)
	b.pubMu.RUnlock()
	if !errors.Is(err, sarama.ErrOutOfOrderSequenceNumber) && !errors.Is(err, sarama.ErrUnknownProducerID) {
		return err
	}
	if rerr := b.replacePublisher(pub); rerr != nil {
		return errors.Join(err, rerr)
	}
	b.pubMu.RLock()
	defer b.pubMu.RUnlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return b.publisher.Publish(b.cfg.Topic, msg)
}

// replacePublisher swaps old for a new producer, unless another send did
// already.
func (b *Broker) replacePublisher(old *wkafka.Publisher) error {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if b.publisher != old {
		return nil
	}
	pub, err := b.newPublisher()
	if err != nil {
		return err
	}
	b.publisher = pub
	b.log.Info("producer replaced: the cluster no longer knew its idempotence state (topic recreated?)")
	b.mu.Lock()
	if b.rd != nil {
		b.rd.nudge() // the reader may need to follow a recreated topic
	}
	b.mu.Unlock()
	if err := old.Close(); err != nil {
		b.log.Warn("closing the replaced producer", "err", err)
	}
	return nil
}

func (b *Broker) newPublisher() (*wkafka.Publisher, error) {
	return wkafka.NewPublisher(wkafka.PublisherConfig{
		Brokers:               b.cfg.Brokers,
		Marshaler:             wkafka.DefaultMarshaler{},
		OverwriteSaramaConfig: saramaConfig(b.cfg),
	}, broker.WatermillLogger(b.log))
}

// History fetches the partition from req.Since up to its high watermark
// at the time of the call, keeping the records of req.Channels. Recovered
// is false when Since is not an id of the current topic (another epoch,
// unparseable, ahead of the log), when records after Since were removed
// by retention (what is left is returned), or when more than Limit
// records matched (the newest Limit are returned). A Limit of zero or
// less returns everything.
func (b *Broker) History(ctx context.Context, req core.HistoryRequest) (core.HistoryResult, error) {
	if b.closed.Load() {
		return core.HistoryResult{}, broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return core.HistoryResult{}, err
	}
	since, ok := ids.Parse(req.Since)
	if !ok {
		return core.HistoryResult{}, nil
	}
	// Cached metadata serves a storm of resumes; anything surprising is
	// checked against fresh metadata before it decides the answer.
	tm, err := b.metadata(ctx, true)
	if err != nil || tm.epoch != since.Epoch || tm.leader < 0 {
		tm, err = b.metadata(ctx, false)
	}
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID):
		return core.HistoryResult{}, nil // the topic is gone
	case err != nil:
		return core.HistoryResult{}, b.unavailable("history: metadata", err)
	case tm.epoch != since.Epoch:
		return core.HistoryResult{}, nil // another epoch
	case tm.leader < 0:
		return core.HistoryResult{}, b.unavailable("history", fmt.Errorf("partition %d has no leader", partition))
	}

	want := make(map[string]bool, len(req.Channels))
	for _, ch := range req.Channels {
		want[ch] = true
	}
	var (
		envs      []*core.Envelope
		recovered = true
		from      = since.Offset + 1
		end       = int64(-1) // the high watermark at the first fetch
	)
	for end < 0 || from < end {
		fp, id, next, err := b.fetch(ctx, tm.leader, since.Epoch, from)
		if err == nil {
			err = fp.Err
		}
		if errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.UnknownTopicOrPartition) {
			return core.HistoryResult{}, nil // deleted (and maybe recreated) meanwhile
		}
		if err != nil && !errors.Is(err, kerr.OffsetOutOfRange) {
			return core.HistoryResult{}, b.unavailable("history: fetch", err)
		}
		if !id.IsZero() && id != since.Epoch {
			return core.HistoryResult{}, nil // recreated meanwhile
		}
		if errors.Is(fp.Err, kerr.OffsetOutOfRange) {
			start, hw, err := b.offsets(ctx)
			if err != nil {
				return core.HistoryResult{}, b.unavailable("history: offsets", err)
			}
			switch {
			case end < 0 && from > hw:
				return core.HistoryResult{}, nil // not an id this log issued
			case from < start:
				recovered = false // retention removed records after since
				from = start
				continue
			default:
				return core.HistoryResult{}, b.unavailable("history: fetch", fp.Err)
			}
		}
		if end < 0 {
			end = fp.HighWatermark
			if from > end {
				return core.HistoryResult{}, nil
			}
		}
		if fp.LogStartOffset > from {
			recovered = false
		}
		progressed := false
		for _, rec := range fp.Records {
			if rec.Offset < from {
				continue
			}
			if rec.Offset >= end {
				from = end
				break
			}
			from, progressed = rec.Offset+1, true
			d, _, err := b.decode(rec)
			if err != nil || !want[d.Channel] {
				continue
			}
			d.Envelope.ID = ids.Format(since.Epoch, rec.Offset)
			envs = append(envs, d.Envelope)
			if req.Limit > 0 && len(envs) >= 2*req.Limit {
				envs = append(envs[:0], envs[len(envs)-req.Limit:]...)
				recovered = false
			}
		}
		if !progressed && from < end {
			// No record in this fetch (control records, a compacted gap):
			// go on where the decoded batches ended.
			if next <= from {
				return core.HistoryResult{}, b.unavailable("history: fetch", fmt.Errorf("no progress at offset %d below high watermark %d", from, end))
			}
			from = next
		}
	}
	if req.Limit > 0 && len(envs) > req.Limit {
		envs = envs[len(envs)-req.Limit:]
		recovered = false
	}
	return core.HistoryResult{Envelopes: envs, Recovered: recovered}, nil
}

// historyFetchBytes bounds one History fetch response.
const historyFetchBytes = 4 << 20

// fetch issues one Fetch of the partition from offset to its leader and
// decodes it with franz-go, returning the partition, the topic ID the
// response names (zero before Fetch v13) and the offset to fetch next.
func (b *Broker) fetch(ctx context.Context, leader int32, ep ids.Epoch, offset int64) (kgo.FetchPartition, ids.Epoch, int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = historyFetchBytes
	req.SessionID = 0
	req.SessionEpoch = -1 // no fetch session
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = b.cfg.Topic
	rt.TopicID = ep
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = partition
	rp.FetchOffset = offset
	rp.PartitionMaxBytes = historyFetchBytes
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)

	kresp, err := b.admin.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return kgo.FetchPartition{}, ids.Epoch{}, 0, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kgo.FetchPartition{}, ids.Epoch{}, 0, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != "" && t.Topic != b.cfg.Topic {
			continue
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.Partition != partition {
				continue
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:    offset,
				Topic:     b.cfg.Topic,
				Partition: partition,
			}, p, kgo.DefaultDecompressor(), nil)
			return fp, ids.Epoch(t.TopicID), next, nil
		}
	}
	return kgo.FetchPartition{}, ids.Epoch{}, 0, fmt.Errorf("partition %d missing from the fetch response", partition)
}

// decode turns a record into a delivery with the watermill message's
// UUID, through watermill-kafka's own unmarshaler so the wire format stays
// watermill's.
func (b *Broker) decode(rec *kgo.Record) (core.Delivery, string, error) {
	cm := &sarama.ConsumerMessage{
		Key:       rec.Key,
		Value:     rec.Value,
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Timestamp: rec.Timestamp,
		Headers:   make([]*sarama.RecordHeader, len(rec.Headers)),
	}
	for i, h := range rec.Headers {
		cm.Headers[i] = &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
	}
	msg, err := b.codec.Unmarshal(cm)
	if err != nil {
		return core.Delivery{}, "", fmt.Errorf("%w: offset %d: %w", broker.ErrMalformed, rec.Offset, err)
	}
	d, err := broker.ParseMessage(msg)
	if err != nil {
		return core.Delivery{}, "", fmt.Errorf("offset %d: %w", rec.Offset, err)
	}
	return d, msg.UUID, nil
}

// Head returns the id of the partition's last record (its high watermark
// minus one) in the topic's current epoch: every record produced later has
// a larger offset. An empty partition has no record to name: "".
func (b *Broker) Head(ctx context.Context) (string, error) {
	if b.closed.Load() {
		return "", broker.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	tm, err := b.metadata(ctx, true)
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID):
		return "", nil
	case err != nil:
		return "", b.unavailable("head: metadata", err)
	}
	lo, err := b.adm.ListEndOffsets(ctx, b.cfg.Topic)
	if err != nil {
		return "", b.unavailable("head: offsets", err)
	}
	o, ok := lo.Lookup(b.cfg.Topic, partition)
	switch {
	case !ok || errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		return "", nil
	case o.Err != nil:
		return "", b.unavailable("head: offsets", o.Err)
	case o.Offset <= 0:
		return "", nil
	}
	return ids.Format(tm.epoch, o.Offset-1), nil
}

// After reports whether id comes after pos: ids of one epoch are ordered
// by offset, across every channel.
func (b *Broker) After(id, pos string) (after, ok bool) {
	a, okA := ids.Parse(id)
	p, okP := ids.Parse(pos)
	if !okA || !okP || a.Epoch != p.Epoch {
		return false, false
	}
	return a.Offset > p.Offset, true
}

// WaitDelivered waits until this node's reader has delivered the record
// id (and everything before it). It returns nil at once for an id of
// another epoch, an unparseable id, one the reader already passed, or one
// ahead of the log (it may never be delivered).
func (b *Broker) WaitDelivered(ctx context.Context, id string) error {
	p, ok := ids.Parse(id)
	if !ok {
		return nil
	}
	return b.waitPosition(ctx, p, true)
}

// Sync waits until this node has delivered every record the partition
// held when Sync was called, or ctx ends.
func (b *Broker) Sync(ctx context.Context) error {
	_, end, err := b.offsets(ctx)
	if err != nil {
		return b.unavailable("sync", err)
	}
	if end == 0 {
		return nil
	}
	ep, _, _ := b.delivered.get()
	return b.waitPosition(ctx, ids.Position{Epoch: ep, Offset: end - 1}, false)
}

func (b *Broker) waitPosition(ctx context.Context, p ids.Position, checkAhead bool) error {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	if done == nil {
		return nil // not started: nothing to deliver to
	}
	if !b.delivered.pending(p) {
		return nil
	}
	if _, _, hw := b.delivered.get(); checkAhead && p.Offset >= hw {
		// Possibly ahead of the log: ask.
		_, end, err := b.offsets(ctx)
		if err != nil {
			return b.unavailable("wait delivered", err)
		}
		if p.Offset >= end {
			return nil
		}
	}
	return b.delivered.wait(ctx, p, done)
}

// Healthy returns nil while the reader fetches from Kafka, and an error
// wrapping ErrUnavailable once it has not completed a fetch for
// RequestTimeout (it keeps retrying, and resumes from where it was). After
// Close it returns broker.ErrClosed. No I/O.
func (b *Broker) Healthy() error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if !started {
		return nil
	}
	return b.health.get()
}

// Epoch returns the epoch of the ids the reader currently issues: the
// topic ID, as it appears in ids.
func (b *Broker) Epoch() string {
	e, _, _ := b.delivered.get()
	return e.String()
}

// Close stops the reader, fails waiting Publish calls with
// broker.ErrClosed, waits for produces in flight (bounded by Sarama's
// timeouts) and closes the publisher and both clients. It returns ctx's
// error if that takes longer than ctx allows; the release then finishes in
// the background. Idempotent.
func (b *Broker) Close(ctx context.Context) error {
	if b.closed.Swap(true) {
		return nil
	}
	b.mu.Lock()
	close(b.closing)
	stop, done, reader := b.stop, b.done, b.reader
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	released := make(chan error, 1)
	go func() {
		var errs []error
		if reader != nil {
			reader.Close()
		}
		if done != nil {
			<-done
		}
		b.pubMu.Lock() // no produce in flight from here on
		if err := b.publisher.Close(); err != nil {
			errs = append(errs, err)
		}
		b.pubMu.Unlock()
		b.admin.Close()
		released <- errors.Join(errs...)
	}()
	select {
	case err := <-released:
		if err != nil {
			return fmt.Errorf("switchboard/broker/kafka: close: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("switchboard/broker/kafka: close: %w", ctx.Err())
	}
}
