package broker

import (
	"sync"
	"time"
)

// Defaults of the idempotency window every driver documents.
const (
	// DefaultDedupWindow is how long an idempotency key is remembered.
	DefaultDedupWindow = 5 * time.Minute
	// DefaultDedupKeys bounds the keys a node remembers.
	DefaultDedupKeys = 500_000
)

// Keys remembers which message id first carried each idempotency key
// within a window, in the order a node reads its log: every node reads
// the same log in the same order, so every node takes the same record as
// the first and drops the same repeats. It is bounded by count: above
// max the oldest keys are forgotten before their window ends, so memory
// stays bounded and a keyed publish is never refused. Safe for
// concurrent use.
type Keys struct {
	window time.Duration
	max    int

	mu     sync.Mutex
	byKey  map[string]KeyEntry
	order  []keyAt // insertion order, from head
	head   int
	warned bool
}

// KeyEntry is the first message seen with a key.
type KeyEntry struct {
	ID     string // its id
	Digest string // core.Publication.Digest of its request
	at     time.Time
}

type keyAt struct {
	key string
	at  time.Time
}

// NewKeys returns a table remembering keys for window, at most max.
func NewKeys(window time.Duration, max int) *Keys {
	return &Keys{window: window, max: max, byKey: make(map[string]KeyEntry)}
}

// See records that the message id (of request digest) carries key, read
// at now. It returns the first message with the key inside the window:
// this one (isFirst) or an earlier one it repeats. early reports, once,
// that the count bound made the table forget a key before its window
// ended (worth a warning: the window is shorter than configured).
func (k *Keys) See(key, digest, id string, now time.Time) (first KeyEntry, isFirst, early bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	early = k.expire(now)
	if e, ok := k.byKey[key]; ok {
		return e, e.ID == id, early
	}
	e := KeyEntry{ID: id, Digest: digest, at: now}
	k.byKey[key] = e
	k.order = append(k.order, keyAt{key, now})
	return e, true, early
}

// Get returns the first message seen with key, if it is remembered.
func (k *Keys) Get(key string, now time.Time) (KeyEntry, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.byKey[key]
	if ok && now.Sub(e.at) > k.window {
		return KeyEntry{}, false
	}
	return e, ok
}

// expire forgets keys older than the window and, above max, the oldest.
// Called with mu held.
func (k *Keys) expire(now time.Time) (early bool) {
	for k.head < len(k.order) {
		o := k.order[k.head]
		over := len(k.order)-k.head >= k.max
		if !over && now.Sub(o.at) <= k.window {
			break
		}
		if over && !k.warned {
			k.warned, early = true, true
		}
		if e, ok := k.byKey[o.key]; ok && e.at.Equal(o.at) {
			delete(k.byKey, o.key)
		}
		k.order[k.head] = keyAt{}
		k.head++
	}
	if k.head > 1024 && k.head*2 > len(k.order) {
		k.order = append([]keyAt(nil), k.order[k.head:]...)
		k.head = 0
	}
	return early
}
