package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store remembers idempotency keys for a while, so a publish retried
// with the same key is not published twice.
type Store interface {
	// Claim reserves key for holdFor (a call that crashes frees it then).
	// claimed is true for the first call; otherwise value is what a
	// completed call stored, or "" while another call holds the claim.
	Claim(ctx context.Context, key string, holdFor time.Duration) (value string, claimed bool, err error)
	// Complete stores value for the claimed key, kept for the store's TTL.
	Complete(ctx context.Context, key, value string) error
	// Release forgets a claim whose call failed, so a retry publishes.
	Release(ctx context.Context, key string) error
}

// ErrStoreFull is returned by MemoryStore.Claim at MaxEntries.
var ErrStoreFull = errors.New("switchboard/edge/api: idempotency store full")

// MaxEntries bounds a MemoryStore.
const MaxEntries = 100_000

// pending marks a claimed key whose call has not completed.
const pending = "\x00pending"

// MemoryStore is a Store for one node: a retry reaching another node is
// not recognised. Entries expire after the TTL.
type MemoryStore struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]memEntry
	sweep   time.Time
}

type memEntry struct {
	id      string
	expires time.Time
}

// NewMemoryStore returns a MemoryStore keeping keys for ttl.
func NewMemoryStore(ttl time.Duration) *MemoryStore {
	return &MemoryStore{ttl: ttl, now: time.Now, entries: make(map[string]memEntry)}
}

func (m *MemoryStore) Claim(_ context.Context, key string, holdFor time.Duration) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.After(m.sweep) { // amortised expiry, at most once a minute
		for k, e := range m.entries {
			if now.After(e.expires) {
				delete(m.entries, k)
			}
		}
		m.sweep = now.Add(time.Minute)
	}
	if e, ok := m.entries[key]; ok && now.Before(e.expires) {
		if e.id == pending {
			return "", false, nil
		}
		return e.id, false, nil
	}
	if len(m.entries) >= MaxEntries {
		for k, e := range m.entries {
			if now.After(e.expires) {
				delete(m.entries, k)
			}
		}
		if len(m.entries) >= MaxEntries {
			return "", false, ErrStoreFull
		}
	}
	m.entries[key] = memEntry{id: pending, expires: now.Add(holdFor)}
	return "", true, nil
}

func (m *MemoryStore) Complete(_ context.Context, key, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[key] = memEntry{id: id, expires: m.now().Add(m.ttl)}
	return nil
}

func (m *MemoryStore) Release(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// RedisStore is a Store shared by every node using one Redis: keys live
// under "switchboard:idem:" with the TTL.
type RedisStore struct {
	client *redis.Client
	ttl    time.Duration
}

// NewRedisStore returns a RedisStore on the Redis at url
// (redis://host:port/db).
func NewRedisStore(url string, ttl time.Duration) (*RedisStore, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return &RedisStore{client: redis.NewClient(opts), ttl: ttl}, nil
}

// Close closes the Redis client.
func (r *RedisStore) Close() error { return r.client.Close() }

func (r *RedisStore) name(key string) string { return "switchboard:idem:" + key }

func (r *RedisStore) Claim(ctx context.Context, key string, holdFor time.Duration) (string, bool, error) {
	ok, err := r.client.SetNX(ctx, r.name(key), pending, holdFor).Result()
	if err != nil {
		return "", false, err
	}
	if ok {
		return "", true, nil
	}
	v, err := r.client.Get(ctx, r.name(key)).Result()
	if errors.Is(err, redis.Nil) { // expired between the two calls: claim again
		return r.Claim(ctx, key, holdFor)
	}
	if err != nil {
		return "", false, err
	}
	if v == pending {
		return "", false, nil
	}
	return v, false, nil
}

func (r *RedisStore) Complete(ctx context.Context, key, id string) error {
	return r.client.Set(ctx, r.name(key), id, r.ttl).Err()
}

func (r *RedisStore) Release(ctx context.Context, key string) error {
	return r.client.Del(ctx, r.name(key)).Err()
}
