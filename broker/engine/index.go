package engine

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// entryOverhead approximates an index entry's memory beyond its payload.
const entryOverhead = 96

// index is the node's bounded in-memory copy of the recent log, per
// channel. The reader adds every record it delivers, in log order, so
// the index holds every record of its epoch positioned after floor up to
// end; eviction takes the oldest first and moves floor up. A resume from
// a position inside [floor, end] reads only its own channels' entries.
type index struct {
	maxBytes   int64 // negative: nothing is indexed
	maxEntries int   // 0: no bound
	maxAge     time.Duration
	read       atomic.Uint64 // entries lookups took, for Stats

	mu    sync.RWMutex
	epoch string
	floor Pos // complete after floor …
	end   Pos // … up to end, the last record delivered
	chans map[string]*chanEntries
	order []*ientry // every entry, log order, from head
	head  int
	bytes int64
}

type ientry struct {
	pos  Pos
	env  *core.Envelope
	ch   *chanEntries
	size int64
	at   time.Time
}

type chanEntries struct {
	name string
	list []*ientry // log order, from head
	head int
}

func newIndex(maxBytes int64, maxEntries int, maxAge time.Duration) *index {
	return &index{maxBytes: maxBytes, maxEntries: maxEntries, maxAge: maxAge, chans: make(map[string]*chanEntries)}
}

// reset empties the index for epoch, complete from pos on.
func (x *index) reset(epoch string, pos Pos) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.epoch, x.floor, x.end = epoch, pos, pos
	clear(x.chans)
	clear(x.order)
	x.order, x.head, x.bytes = x.order[:0], 0, 0
}

// add indexes env, the record at pos of channel; at is when it was read.
func (x *index) add(channel string, pos Pos, env *core.Envelope, size int, at time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.end = pos
	if x.maxBytes < 0 {
		x.floor = pos
		return
	}
	c := x.chans[channel]
	if c == nil {
		c = &chanEntries{name: channel}
		x.chans[channel] = c
	}
	e := &ientry{pos: pos, env: env, ch: c, size: int64(size) + entryOverhead + int64(len(channel)), at: at}
	c.list = append(c.list, e)
	x.order = append(x.order, e)
	x.bytes += e.size
	x.evict(at)
}

// skip records that the reader passed pos without indexing anything (a
// malformed record, a duplicate): the index stays complete up to it.
func (x *index) skip(pos Pos) {
	x.mu.Lock()
	x.end = pos
	if x.maxBytes < 0 {
		x.floor = pos
	}
	x.mu.Unlock()
}

// evict drops the oldest entries while over budget or too old. Called
// with mu held.
func (x *index) evict(now time.Time) {
	for x.head < len(x.order) {
		e := x.order[x.head]
		if x.bytes <= x.maxBytes && now.Sub(e.at) <= x.maxAge && (x.maxEntries <= 0 || len(x.order)-x.head <= x.maxEntries) {
			break
		}
		x.order[x.head] = nil
		x.head++
		x.bytes -= e.size
		x.floor = e.pos
		c := e.ch
		c.list[c.head] = nil
		c.head++
		if c.head == len(c.list) {
			delete(x.chans, c.name)
		} else if c.head > 32 && c.head*2 > len(c.list) {
			c.list = slices.Clone(c.list[c.head:])
			c.head = 0
		}
	}
	if x.head > 1024 && x.head*2 > len(x.order) {
		x.order = slices.Clone(x.order[x.head:])
		x.head = 0
	}
}

// lookupResult says how far the index could answer.
type lookupResult int

const (
	answered   lookupResult = iota // envs is the whole answer
	tooOld                         // since is before floor: the log must be read up to floor
	ahead                          // since is after end: the reader has not got there yet
	otherEpoch                     // since is not of the index's epoch
)

// lookup returns the entries of channels positioned after since, oldest
// first: all of them when since is inside the index; when since is
// older than the index, what the index has (after floor), with the floor
// where the log must take over.
func (x *index) lookup(epoch string, since Pos, channels []string) (envs []*core.Envelope, floor Pos, res lookupResult) {
	return x.first(epoch, since, channels, 0)
}

// first is lookup returning only the first n entries (all when n <= 0):
// it takes at most n of each channel, so its cost follows n, not how
// many entries follow since.
func (x *index) first(epoch string, since Pos, channels []string, n int) (envs []*core.Envelope, floor Pos, res lookupResult) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	switch {
	case epoch != x.epoch:
		return nil, Pos{}, otherEpoch
	case x.end.Less(since):
		return nil, Pos{}, ahead
	}
	res, from := answered, since
	if since.Less(x.floor) {
		res, from = tooOld, x.floor
	}
	var picked []*ientry
	for _, ch := range channels {
		c := x.chans[ch]
		if c == nil {
			continue
		}
		list := c.list[c.head:]
		i := sort.Search(len(list), func(i int) bool { return from.Less(list[i].pos) })
		list = list[i:]
		if n > 0 && len(list) > n {
			list = list[:n]
		}
		picked = append(picked, list...)
	}
	if len(channels) > 1 {
		slices.SortFunc(picked, func(a, b *ientry) int {
			switch {
			case a.pos.Less(b.pos):
				return -1
			case b.pos.Less(a.pos):
				return 1
			}
			return 0
		})
	}
	x.read.Add(uint64(len(picked)))
	if n > 0 && len(picked) > n {
		picked = picked[:n]
	}
	envs = make([]*core.Envelope, len(picked))
	for i, e := range picked {
		envs[i] = e.env
	}
	return envs, x.floor, res
}

// stats reports the index's size, for metrics and tests.
func (x *index) stats() (entries int, bytes int64, floor, end Pos) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.order) - x.head, x.bytes, x.floor, x.end
}

// filler collects what a history read found below the index's floor,
// every channel, to extend the index downwards with it (backfill).
type filler struct {
	entries []*ientry
	bytes   int64
	max     int64 // bytes; negative: collect nothing
	full    bool  // more than max: give up (it would be evicted at once)
}

func (x *index) filler() *filler {
	max := x.maxBytes
	if max >= 0 {
		max /= 2 // never push out more than half of the newer entries
	}
	return &filler{max: max}
}

func (f *filler) add(channel string, pos Pos, env *core.Envelope, size int, at time.Time) {
	if f.full || f.max < 0 {
		return
	}
	e := &ientry{pos: pos, env: env, ch: &chanEntries{name: channel}, size: int64(size) + entryOverhead + int64(len(channel)), at: at}
	f.bytes += e.size
	if f.bytes > f.max {
		f.full, f.entries = true, nil
		return
	}
	f.entries = append(f.entries, e)
}

// commit puts the entries, which are every record of epoch in
// (from, to], below the index's floor, when they reach down from it:
// the index is then complete from from on. The index may have moved
// meanwhile; what no longer joins up is dropped.
func (f *filler) commit(x *index, epoch string, from, to Pos, now time.Time) {
	if f.full || f.max < 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.epoch != epoch || to.Less(x.floor) || !from.Less(x.floor) {
		return // a gap between the read and the index, or nothing below it
	}
	n := 0
	for n < len(f.entries) && !x.floor.Less(f.entries[n].pos) {
		n++ // entries up to the floor: the ones the index lacks
	}
	below := f.entries[:n]
	// Entries take the age of the oldest one indexed (they are older), so
	// IndexAge never keeps them longer than it keeps that one.
	if x.head < len(x.order) {
		for _, e := range below {
			e.at = x.order[x.head].at
		}
	}
	byChan := make(map[string][]*ientry)
	for _, e := range below {
		byChan[e.ch.name] = append(byChan[e.ch.name], e)
	}
	for name, list := range byChan {
		c := x.chans[name]
		if c == nil {
			c = &chanEntries{name: name}
			x.chans[name] = c
		}
		for _, e := range list {
			e.ch = c
		}
		c.list = append(list, c.list[c.head:]...)
		c.head = 0
	}
	x.order = append(slices.Clip(below), x.order[x.head:]...)
	x.head = 0
	for _, e := range below {
		x.bytes += e.size
	}
	x.floor = from
	x.evict(now)
}
