package engine

import (
	"context"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Driver is one append-only log, shared by every node of a deployment.
// The engine calls Read from one goroutine (its reader), Range from
// History calls (at most Config.HistoryReads at once), and Append from
// its committer (one call at a time); Head from any of them. A driver
// should give Read, Range and Append separate connections, so a slow
// history read or a burst of appends never delays the live reader.
//
// Errors caused by the log being unreachable should wrap the driver's
// ErrUnavailable sentinel and name the driver in their text
// ("switchboard/broker/redis: …"): the engine passes them on as they are.
type Driver interface {
	// Name is the driver's short name, for logs and errors: "redis".
	Name() string

	// KeysInLog reports whether Append decides idempotency keys in the
	// log itself, atomically (a Redis script, JetStream's Nats-Msg-Id):
	// then its Appended results are final, a keyed publish returns as
	// soon as it is appended, and the reader never drops a record for
	// its key. Otherwise the engine's reader decides, on every node
	// alike, and a keyed publish waits until this node has read it.
	KeysInLog() bool

	// Head returns the log's epoch, creating one if the log has none yet,
	// and the position of its newest record (the zero Pos when it is
	// empty). Every record appended after Head returns is positioned
	// after pos.
	Head(ctx context.Context) (epoch string, pos Pos, err error)

	// Read returns the records positioned after `after` in the log of
	// epoch, oldest first, at most max, waiting a short while (the
	// driver's block time) when there are none yet; an empty batch with
	// a nil error means none arrived. When the log is no longer that
	// epoch (recreated, flushed), Batch.Epoch names the new one and its
	// records are read from the new log's start. Batch.Gap reports
	// records after `after` that the log dropped before they were read
	// (trimmed during an outage).
	Read(ctx context.Context, epoch string, after Pos, max int) (Batch, error)

	// Range returns up to max records positioned after `after`, oldest
	// first, without waiting, and the log's state at that moment: its
	// epoch and whether records after `after` are no longer retained.
	// It is the history path for positions older than the engine's
	// index.
	Range(ctx context.Context, after Pos, max int) (Chunk, error)

	// Since returns a position from which Range reads every record
	// appended at or after t (by the log's clock; records a little older
	// may come too): at most as late as the last record before t. The
	// zero Pos (the log's start) is always correct, at the cost of a
	// longer read. On a log that does not decide keys (KeysInLog false)
	// a starting node reads from Since(now - dedup window) to its head,
	// so that it knows the keys appended before it started and drops
	// their repeats in replays as the other nodes do.
	Since(ctx context.Context, t time.Time) (Pos, error)

	// Append appends msgs to the log, in order, and returns one result
	// per message. A message whose metadata carries MetadataKey may be
	// refused as a duplicate by the log itself (Appended.Duplicate, Pos
	// the first one's position) when a message with that key was
	// appended within window; drivers without such a log-side check
	// append it (the engine's reader drops it). epoch is the epoch of the
	// log the messages went to. An error means none of the results is
	// known: the messages may or may not be in the log.
	Append(ctx context.Context, msgs []*message.Message, window time.Duration) (epoch string, res []Appended, err error)

	// Close releases the driver's connections; it interrupts a blocked
	// Read. The engine calls it once, last.
	Close() error
}

// Pos is a position in a log: two unsigned integers compared in order
// (a Redis stream entry ID is <ms>-<seq>; a JetStream sequence or a
// Kafka offset uses Lo only). The zero Pos is before every record.
type Pos struct{ Hi, Lo uint64 }

// Less reports whether p comes before q.
func (p Pos) Less(q Pos) bool { return p.Hi < q.Hi || (p.Hi == q.Hi && p.Lo < q.Lo) }

// IsZero reports whether p is the position before every record.
func (p Pos) IsZero() bool { return p == Pos{} }

// String is the position as it appears in ids: "<lo>" when Hi is zero,
// "<hi>-<lo>" otherwise (a Redis entry ID reads as Redis prints it).
func (p Pos) String() string {
	if p.Hi == 0 {
		return strconv.FormatUint(p.Lo, 10)
	}
	return strconv.FormatUint(p.Hi, 10) + "-" + strconv.FormatUint(p.Lo, 10)
}

// Record is one entry of the log, decoded by the driver with its
// Watermill marshaller.
type Record struct {
	Pos Pos
	// Msg is the decoded message; nil when Err is set (an entry that is
	// not a Watermill message: the engine logs and skips it).
	Msg *message.Message
	Err error
	// Size approximates the entry's size in bytes, for the index budget.
	Size int
}

// Batch is what one Read returns.
type Batch struct {
	Epoch   string
	Records []Record
	Gap     bool
	// Head, with Gap and no Records, is the log's newest position when
	// every record after `after` up to it is gone (trimmed while the
	// reader was away): the reader goes on after it. A driver that
	// cannot tell leaves it zero, and the reader waits for the next
	// record instead.
	Head Pos
}

// Chunk is what one Range returns.
type Chunk struct {
	Epoch   string
	Records []Record
	// Trimmed: records after the requested position are no longer in the
	// log (retention dropped them), so a history from it is incomplete.
	Trimmed bool
}

// Appended is the outcome of one appended message.
type Appended struct {
	Pos Pos
	// Duplicate: the log refused the message because its key was
	// appended before, at Pos.
	Duplicate bool
	// Digest is the first publication's core.Publication.Digest, for a
	// Duplicate, when the log keeps it ("" otherwise).
	Digest string
	// Err, when set, means this message was not appended.
	Err error
}
