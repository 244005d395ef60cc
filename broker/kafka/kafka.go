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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
)

// partition is the one partition the driver produces to and reads. A topic
// created with more partitions (by hand) still works: the others are
// ignored.
const partition int32 = 0

// New validates cfg, connects to the cluster, creates the topic if it does
// not exist (one partition, Retention, ReplicationFactor), and returns the
// log engine over the topic's partition. An unreachable cluster is an
// error wrapping broker.ErrUnavailable; a bad cfg one wrapping ErrInvalidConfig.
// Call Start to begin delivering, and Close to release the connections.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*engine.Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("broker", "kafka", "topic", cfg.Topic)
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	b, err := engine.New(d, cfg.Engine, logger)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return b, nil
}

// open makes the driver for cfg (validated, defaults set): it pings the
// cluster and creates the topic if it is missing.
func open(ctx context.Context, cfg Config, logger *slog.Logger) (*driver, error) {
	d := &driver{cfg: cfg, log: logger, addrs: strings.Join(cfg.Brokers, ",")}
	var err error
	if d.admin, err = kgo.NewClient(d.clientOptions()...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.RequestTimeout)
	defer cancel()
	if err := d.admin.Ping(cctx); err != nil {
		_ = d.Close()
		return nil, d.unreachable(err)
	}
	if _, err := d.ensureTopic(cctx, d.admin); err != nil {
		_ = d.Close()
		return nil, err
	}
	if d.hist, err = kgo.NewClient(d.clientOptions()...); err == nil {
		d.pub, err = d.newProducer()
	}
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("switchboard/broker/kafka: %w", err)
	}
	return d, nil
}

// driver is the Kafka engine.Driver: one partition of one topic holds
// every channel; records are Watermill messages in watermill-kafka's
// format (codec.go); a record at offset o is at position o+1, and the
// epoch is the topic's ID. Four franz-go clients keep the paths apart:
// Head's (metadata, offsets, topic creation), the reader's consumer,
// history's fetches, and the idempotent producer.
type driver struct {
	cfg   Config
	log   *slog.Logger
	addrs string // the seed brokers, for messages

	admin *kgo.Client // Head
	hist  *kgo.Client // Range

	// The reader's state: the reader goroutine's alone (see reader.go).
	rd        *kgo.Client // nil until the first Read
	rdEpoch   string      // the epoch rd was positioned for
	rdNext    int64       // the offset rd returns next
	lastCheck time.Time   // of the topic's ID, after a fetch error
	fetches   fetchHealth // kept by hooks on rd
	recheck   atomic.Bool // check the topic's ID at the next Read: the producer saw it change

	pub *producer // Append's, one call at a time; replaced under mu

	mu      sync.Mutex     // guards closed, and the swaps of rd and pub against Close
	closed  bool           //
	retired sync.WaitGroup // replaced producers closing in the background
}

// clientOptions are the franz-go settings every client shares, chosen
// deliberately: short dials, a bounded wait on top of each request, a
// short exponential backoff, and retries bounded in time so a metadata or
// offsets request fails within about RequestTimeout during an outage
// instead of kgo's 30s.
func (d *driver) clientOptions() []kgo.Opt {
	cfg := d.cfg
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

func (d *driver) Name() string { return "kafka" }

// KeysInLog is false: Kafka keeps no idempotency keys, so every keyed
// message is appended and the engine's reader drops the repeats.
func (d *driver) KeysInLog() bool { return false }

// ensureTopic creates the topic if it is missing, and returns its
// metadata.
func (d *driver) ensureTopic(ctx context.Context, cl *kgo.Client) (topicMeta, error) {
	tm, err := d.metadata(ctx, cl, false)
	if isUnknownTopic(err) {
		configs := map[string]*string{}
		if d.cfg.Retention > 0 {
			ms := fmt.Sprint(d.cfg.Retention.Milliseconds())
			configs["retention.ms"] = &ms
		}
		rf := int16(-1)
		if d.cfg.ReplicationFactor > 0 {
			rf = int16(d.cfg.ReplicationFactor)
		}
		res, cerr := kadm.NewClient(cl).CreateTopic(ctx, 1, rf, configs, d.cfg.Topic)
		if cerr == nil {
			cerr = res.Err
		}
		switch {
		case errors.Is(cerr, kerr.TopicAlreadyExists): // another node was first
		case cerr != nil && isUnreachable(cerr):
			return topicMeta{}, d.unreachable(cerr)
		case cerr != nil:
			return topicMeta{}, fmt.Errorf("switchboard/broker/kafka: create topic %q at %s: %w", d.cfg.Topic, d.addrs, cerr)
		default:
			d.log.Info("created topic", "partitions", 1, "replication_factor", rf, "retention", d.cfg.Retention)
		}
		tm, err = d.metadata(ctx, cl, false)
	}
	if err != nil {
		if isUnreachable(err) {
			return topicMeta{}, d.unreachable(err)
		}
		return topicMeta{}, fmt.Errorf("switchboard/broker/kafka: topic %q at %s: %w", d.cfg.Topic, d.addrs, err)
	}
	if tm.epoch.IsZero() {
		return topicMeta{}, fmt.Errorf("switchboard/broker/kafka: topic %q at %s has no topic ID: Kafka 2.8 or newer is required", d.cfg.Topic, d.addrs)
	}
	if tm.partitions > 1 {
		d.log.Warn("topic has more than one partition; the driver uses partition 0 only", "partitions", tm.partitions)
	}
	return tm, nil
}

// topicMeta is what the driver needs from a metadata response.
type topicMeta struct {
	epoch      ids.Epoch
	leader     int32 // of the partition the driver uses; -1 if none
	partitions int
}

// metadata asks cl for the topic's metadata: from franz-go's cache (at
// most a second old) when cached, else from the cluster. A missing topic
// is an error wrapping kerr.UnknownTopicOrPartition.
func (d *driver) metadata(ctx context.Context, cl *kgo.Client, cached bool) (topicMeta, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(d.cfg.Topic)
	req.Topics = append(req.Topics, rt)
	var resp *kmsg.MetadataResponse
	var err error
	if cached {
		resp, err = cl.RequestCachedMetadata(ctx, req, time.Second)
	} else {
		resp, err = req.RequestWith(ctx, cl)
	}
	if err != nil {
		return topicMeta{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != d.cfg.Topic {
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
func (d *driver) offsets(ctx context.Context, cl *kgo.Client) (start, end int64, err error) {
	adm := kadm.NewClient(cl)
	for _, list := range []struct {
		f   func(context.Context, ...string) (kadm.ListedOffsets, error)
		out *int64
	}{{adm.ListStartOffsets, &start}, {adm.ListEndOffsets, &end}} {
		lo, err := list.f(ctx, d.cfg.Topic)
		if err != nil {
			return 0, 0, err
		}
		o, ok := lo.Lookup(d.cfg.Topic, partition)
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

// isUnknownTopic: the topic (or the ID asked for) does not exist.
func isUnknownTopic(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// isUnreachable tells a connection failure from a refusal by Kafka.
func isUnreachable(err error) bool {
	var kerrErr *kerr.Error
	return err != nil && !errors.As(err, &kerrErr)
}

// unreachable is the one-line error for a cluster that cannot be reached.
func (d *driver) unreachable(err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/kafka: cannot reach kafka at %s: %v (is Kafka running? check --broker-url)", d.addrs, err), err)
}

// unavailable wraps an operation's failure during an outage.
func (d *driver) unavailable(op string, err error) error {
	return broker.Unavailable(fmt.Sprintf("switchboard/broker/kafka: %s: kafka at %s: %v", op, d.addrs, err), err)
}

// Head reads the topic's ID (from metadata at most a second old) and the
// partition's end offset, creating the topic if it is missing (deleted
// under a running deployment: the new topic is a new epoch). The end
// offset is the position of the last record (offset end-1 is at
// position end), so every record produced later is positioned after it.
func (d *driver) Head(ctx context.Context) (string, engine.Pos, error) {
	tm, err := d.metadata(ctx, d.admin, true)
	if isUnknownTopic(err) {
		tm, err = d.ensureTopic(ctx, d.admin)
	}
	if err != nil {
		if errors.Is(err, broker.ErrUnavailable) {
			return "", engine.Pos{}, err
		}
		return "", engine.Pos{}, d.unavailable("head: metadata", err)
	}
	lo, err := kadm.NewClient(d.admin).ListEndOffsets(ctx, d.cfg.Topic)
	if err != nil {
		return "", engine.Pos{}, d.unavailable("head: end offset", err)
	}
	o, ok := lo.Lookup(d.cfg.Topic, partition)
	switch {
	case !ok:
		return "", engine.Pos{}, d.unavailable("head: end offset", kerr.UnknownTopicOrPartition)
	case o.Err != nil:
		return "", engine.Pos{}, d.unavailable("head: end offset", o.Err)
	case o.Offset <= 0:
		return tm.epoch.String(), engine.Pos{}, nil
	}
	return tm.epoch.String(), engine.Pos{Lo: uint64(o.Offset)}, nil
}

// Close closes the four clients; closing the reader's interrupts a
// blocked Read, closing the producer fails an Append in flight. It waits
// for replaced producers to close.
func (d *driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	rd, pub := d.rd, d.pub
	d.mu.Unlock()
	for _, cl := range []*kgo.Client{rd, d.hist, d.admin} {
		if cl != nil {
			cl.Close()
		}
	}
	if pub != nil {
		pub.cl.Close()
	}
	d.retired.Wait()
	return nil
}
