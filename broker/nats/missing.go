package nats

import (
	"fmt"
	"strings"
	"sync"
	"time"

	natsio "github.com/nats-io/nats.go"
)

// streamLostAfter is how long a file-storage stream may be reported
// missing, without its deletion advisory, before the driver takes it as
// gone and creates it anew. Longer than a server or a cluster takes to
// load its streams after a restart.
const streamLostAfter = time.Minute

// absence decides what a stream the server reports missing ("stream not
// found") means. It may be gone: deleted (its advisory says so), or lost
// with a memory-storage server's restart; the driver then creates it
// anew, a new epoch, and ids issued before resume with recovered:false.
// Or it may not be loaded yet: a server restarted on its data, a cluster
// still replaying its metadata, answer "not found" for a stream they
// hold. Creating it then would turn a restart into a lost log, so the
// driver reports it unavailable (the client retries with the same
// position) until it is found, or has been missing for streamLostAfter
// (a file-storage stream deleted while the advisory could not arrive, or
// a server that lost its store). Safe for concurrent use.
type absence struct {
	mu      sync.Mutex
	memory  bool      // the stream as last found is on memory storage
	deleted bool      // its deletion advisory arrived since it was last found
	since   time.Time // the first "not found" of the current run; zero while found
	last    time.Time // the latest "not found"
}

// found records that the stream exists (on memory storage or not).
func (a *absence) found(memory bool) {
	a.mu.Lock()
	a.memory, a.deleted, a.since, a.last = memory, false, time.Time{}, time.Time{}
	a.mu.Unlock()
}

// markDeleted records the stream's deletion advisory.
func (a *absence) markDeleted() {
	a.mu.Lock()
	a.deleted = true
	a.mu.Unlock()
}

// gone is called when a lookup at now found the stream missing: it
// reports whether the stream is gone, and why or why not, for messages.
// The time missing counts from the first of a run of "not found"
// answers, none more than streamLostAfter after the one before (the
// reader asks again at least every Engine.MaxReconnectBackoff while it
// is missing); an answer after a longer quiet spell starts a new run, so
// two blips an hour apart are not an hour of absence.
func (a *absence) gone(now time.Time) (why string, gone bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.since.IsZero() || now.Sub(a.last) > streamLostAfter {
		a.since = now
	}
	a.last = now
	missing := now.Sub(a.since)
	switch {
	case a.deleted:
		return "deleted (its advisory arrived)", true
	case a.memory:
		return "on memory storage (lost with a server's restart)", true
	case missing >= streamLostAfter:
		return fmt.Sprintf("missing for %s", missing.Round(time.Second)), true
	default:
		return fmt.Sprintf("taken as not loaded yet by a restarting server (missing for %s; gone after %s, or on its deletion advisory)",
			missing.Round(time.Millisecond), streamLostAfter), false
	}
}

// advisory handles JetStream's advisories about the stream, on the
// publishing connection: any of them may mean it was replaced, and a
// deletion that it is gone.
func (d *driver) advisory(m *natsio.Msg) {
	if strings.HasPrefix(m.Subject, "$JS.EVENT.ADVISORY.STREAM.DELETED.") {
		d.absent.markDeleted()
	}
	d.pubEpoch.markStale()
}
