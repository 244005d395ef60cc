package core

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

const hubShards = 64

// Hub tracks which local sessions are members of which channels (rooms and
// users) and fans broker deliveries out to them. It is sharded by channel so
// joins in one room do not contend with broadcasts in another.
//
// Broadcast holds a shard's read lock while it enqueues; enqueueing never
// blocks, so a slow member cannot delay the others.
type Hub struct {
	shards [hubShards]hubShard
	rooms  atomic.Int64 // channels with the room prefix and at least one local member
}

type hubShard struct {
	mu    sync.RWMutex
	chans map[string]*smallSet[*Session]
}

func newHub() *Hub {
	h := &Hub{}
	for i := range h.shards {
		h.shards[i].chans = make(map[string]*smallSet[*Session])
	}
	return h
}

func (h *Hub) shard(channel string) *hubShard {
	// FNV-1a, inlined to avoid allocating a hash.Hash.
	var x uint32 = 2166136261
	for i := 0; i < len(channel); i++ {
		x ^= uint32(channel[i])
		x *= 16777619
	}
	return &h.shards[x%hubShards]
}

// add makes s a member of channel. It fails with ErrSessionClosed, adding
// nothing, once s is closing.
func (h *Hub) add(channel string, s *Session) error {
	sh := h.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// A session that is ending may already have been detached; adding it
	// now would leave it in the channel forever. detach's removals take
	// mu after closing is set, so this check cannot miss one.
	if s.isClosing() {
		return ErrSessionClosed
	}
	members := sh.chans[channel]
	if members == nil {
		// A user channel holds that user's few connections: a small
		// set costs a slice, not a map, per connected user.
		members = new(smallSet[*Session])
		sh.chans[channel] = members
		if strings.HasPrefix(channel, "room:") {
			h.rooms.Add(1)
		}
	}
	members.add(s)
	return nil
}

// remove drops s from channel. Removing a non-member is a no-op.
func (h *Hub) remove(channel string, s *Session) {
	sh := h.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	members, ok := sh.chans[channel]
	if !ok || !members.del(s) {
		return
	}
	if members.len() == 0 {
		delete(sh.chans, channel)
		if strings.HasPrefix(channel, "room:") {
			h.rooms.Add(-1)
		}
	}
}

// broadcast enqueues the shared frame to every local member of channel,
// applying pol to members whose queue is full, and returns how many it
// reached. It allocates nothing per recipient.
func (h *Hub) broadcast(channel string, frame []byte, id string, pol SlowPolicy) int {
	sh := h.shard(channel)
	sh.mu.RLock()
	n := 0
	if members := sh.chans[channel]; members != nil {
		for _, s := range members.few {
			if s.enqueue(frame, id, channel, pol) {
				n++
			}
		}
		for s := range members.many {
			if s.enqueue(frame, id, channel, pol) {
				n++
			}
		}
	}
	sh.mu.RUnlock()
	return n
}

// sessions returns the local members of channel.
func (h *Hub) sessions(channel string) []*Session {
	sh := h.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	members := sh.chans[channel]
	if members == nil {
		return nil
	}
	return members.list()
}

// Members returns how many local sessions are in channel.
func (h *Hub) Members(channel string) int {
	sh := h.shard(channel)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if members := sh.chans[channel]; members != nil {
		return members.len()
	}
	return 0
}

// Channels returns how many channels (rooms and users) have local members.
func (h *Hub) Channels() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.chans)
		sh.mu.RUnlock()
	}
	return n
}

// Rooms returns how many rooms have local members.
func (h *Hub) Rooms() int { return int(h.rooms.Load()) }

// RoomSize is a room and its number of local members.
type RoomSize struct {
	Room    string `json:"room"`
	Members int    `json:"members"`
}

// Busiest returns up to n rooms with the most local members, largest
// first. It walks every channel: call it at sampling rate, not per
// message.
func (h *Hub) Busiest(n int) []RoomSize {
	if n <= 0 {
		return nil
	}
	var top []RoomSize
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for ch, members := range sh.chans {
			room, ok := strings.CutPrefix(ch, "room:")
			if !ok {
				continue
			}
			size := members.len()
			if last := len(top) - 1; len(top) == n && (size < top[last].Members || size == top[last].Members && room > top[last].Room) {
				continue // ranks below the current last: larger first, then by name
			}
			top = append(top, RoomSize{Room: room, Members: size})
			slices.SortFunc(top, func(a, b RoomSize) int {
				if a.Members != b.Members {
					return b.Members - a.Members
				}
				return strings.Compare(a.Room, b.Room)
			})
			if len(top) > n {
				top = top[:n]
			}
		}
		sh.mu.RUnlock()
	}
	return top
}
