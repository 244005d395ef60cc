package memory_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// gated is a delivery callback that blocks until its gate opens and
// records what it delivered.
type gated struct {
	gate chan struct{}
	mu   sync.Mutex
	ids  []string
}

func newGated() *gated { return &gated{gate: make(chan struct{})} }

func (g *gated) deliver(d core.Delivery) {
	<-g.gate
	g.mu.Lock()
	g.ids = append(g.ids, d.Envelope.ID)
	g.mu.Unlock()
}

func (g *gated) delivered() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.ids...)
}

func seqOf(t *testing.T, id string) uint64 {
	t.Helper()
	_, s, _ := strings.Cut(id, "-")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return n
}

// TestPublishDoesNotWaitForDelivery: with the callback stuck, Publish
// returns for as many messages as the buffer holds (plus the one in the
// callback and one read from the subscription) and then waits, without
// dropping; everything is delivered in id order once the callback moves.
func TestPublishDoesNotWaitForDelivery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const buffer = 4
		b := newBroker(t, memory.Config{DeliveryBuffer: buffer})
		g := newGated()
		if err := b.Start(context.Background(), g.deliver); err != nil {
			t.Fatal(err)
		}
		ch := core.RoomChannel("r")
		var ids []string
		for range buffer + 1 { // one in the callback, buffer in the queue
			ids = append(ids, publish(t, b, ch))
		}
		// The next one is read from the subscription but has no room: its
		// Publish waits.
		var returned atomic.Bool
		done := make(chan string)
		go func() {
			id, _ := publishTo(b, context.Background(), ch, &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r"})
			returned.Store(true)
			done <- id
		}()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("Publish returned with the delivery buffer full")
		}
		// History on a channel with nothing in flight does not wait for
		// the stuck callback.
		quiet := core.RoomChannel("quiet")
		if _, err := b.History(context.Background(), core.HistoryRequest{Channels: []string{quiet}, Since: ids[0], Limit: 10}); err != nil {
			t.Fatal(err)
		}
		close(g.gate)
		ids = append(ids, <-done)
		synctest.Wait()
		if got := g.delivered(); strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Fatalf("delivered %v, want %v", got, ids)
		}
	})
}

// TestHistoryWaitsForDelivery: History does not return a message whose
// delivery has not finished, so a resuming session never gets it twice
// (once from history, once live).
func TestHistoryWaitsForDelivery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, memory.Config{})
		g := newGated()
		if err := b.Start(context.Background(), g.deliver); err != nil {
			t.Fatal(err)
		}
		ch := core.RoomChannel("r")
		id := publish(t, b, ch)
		var got atomic.Int32
		done := make(chan core.HistoryResult)
		go func() {
			res, _ := b.History(context.Background(), core.HistoryRequest{Channels: []string{ch}, Since: b.Epoch() + "-0", Limit: 10})
			got.Store(1)
			done <- res
		}()
		synctest.Wait()
		if got.Load() != 0 {
			t.Fatal("History returned a message still on its way to the callback")
		}
		close(g.gate)
		res := <-done
		if !res.Recovered || len(res.Envelopes) != 1 || res.Envelopes[0].ID != id || len(g.delivered()) != 1 {
			t.Fatalf("History = recovered %v with %d, delivered %v", res.Recovered, len(res.Envelopes), g.delivered())
		}

		// A History whose context ends while it waits returns the error.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		stuck := newBroker(t, memory.Config{})
		g2 := newGated()
		if err := stuck.Start(context.Background(), g2.deliver); err != nil {
			t.Fatal(err)
		}
		publish(t, stuck, ch)
		if _, err := stuck.History(ctx, core.HistoryRequest{Channels: []string{ch}, Since: stuck.Epoch() + "-0"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("History with a stuck delivery = %v, want DeadlineExceeded", err)
		}
		close(g2.gate)
	})
}

// TestSync: Sync returns once everything published before it has been
// delivered.
func TestSync(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, memory.Config{})
		if err := b.Sync(context.Background()); err != nil {
			t.Fatalf("Sync before Start = %v", err)
		}
		g := newGated()
		if err := b.Start(context.Background(), g.deliver); err != nil {
			t.Fatal(err)
		}
		id := publish(t, b, core.RoomChannel("r"))
		var synced atomic.Bool
		done := make(chan error)
		go func() {
			err := b.Sync(context.Background())
			synced.Store(true)
			done <- err
		}()
		synctest.Wait()
		if synced.Load() {
			t.Fatal("Sync returned before the publication was delivered")
		}
		close(g.gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := g.delivered(); len(got) != 1 || got[0] != id {
			t.Fatalf("delivered %v when Sync returned, want [%s]", got, id)
		}
	})
}

// TestOrderWithSlowDelivery: concurrent publishers over several channels
// with a slow callback and a small buffer: every message is delivered
// once, in id order (the memory broker's global order), and each
// publisher's messages in its own order.
func TestOrderWithSlowDelivery(t *testing.T) {
	t.Parallel()
	for _, buffer := range []int{8, -1} {
		t.Run("buffer "+strconv.Itoa(buffer), func(t *testing.T) {
			t.Parallel()
			b := newBroker(t, memory.Config{DeliveryBuffer: buffer})
			var (
				mu      sync.Mutex
				ids     []string
				changed = make(chan struct{}, 1)
			)
			if err := b.Start(context.Background(), func(d core.Delivery) {
				time.Sleep(50 * time.Microsecond) // a slow fan-out
				mu.Lock()
				ids = append(ids, d.Envelope.ID)
				mu.Unlock()
				select {
				case changed <- struct{}{}:
				default:
				}
			}); err != nil {
				t.Fatal(err)
			}
			const publishers, each = 8, 50
			type result struct {
				ids []string
				err error
			}
			results := make(chan result, publishers)
			for p := range publishers {
				go func() {
					var r result
					for i := range each {
						ch := core.RoomChannel("c" + strconv.Itoa((p+i)%3))
						id, err := publishTo(b, context.Background(), ch, &core.Envelope{V: core.Version, Type: core.TypeMessage})
						if err != nil {
							r.err = err
							break
						}
						r.ids = append(r.ids, id)
					}
					results <- r
				}()
			}
			published := map[string]bool{}
			var perPublisher [][]string
			for range publishers {
				r := <-results
				if r.err != nil {
					t.Fatal(r.err)
				}
				perPublisher = append(perPublisher, r.ids)
				for _, id := range r.ids {
					published[id] = true
				}
			}
			marker := publish(t, b, core.RoomChannel("marker"))
			timeout := time.After(10 * time.Second)
			for {
				mu.Lock()
				n := len(ids)
				last := ""
				if n > 0 {
					last = ids[n-1]
				}
				mu.Unlock()
				if last == marker {
					break
				}
				select {
				case <-changed:
				case <-timeout:
					t.Fatalf("marker not delivered; %d deliveries", n)
				}
			}
			mu.Lock()
			got := ids[:len(ids)-1]
			mu.Unlock()
			if len(got) != publishers*each {
				t.Fatalf("%d deliveries, want %d", len(got), publishers*each)
			}
			for i, id := range got {
				if !published[id] {
					t.Fatalf("delivered unknown or duplicate id %s", id)
				}
				delete(published, id)
				if i > 0 && seqOf(t, got[i-1]) >= seqOf(t, id) {
					t.Fatalf("delivered %s after %s: not in id order", id, got[i-1])
				}
			}
			for p, mine := range perPublisher {
				for i := 1; i < len(mine); i++ {
					if seqOf(t, mine[i-1]) >= seqOf(t, mine[i]) {
						t.Fatalf("publisher %d: id %s after %s", p, mine[i], mine[i-1])
					}
				}
			}
		})
	}
}

// TestCloseWithBufferedMessages: Close while the callback is stuck, the
// buffer is full and a Publish waits for room: the waiting Publish
// returns, Close waits for the callback in progress, drops what is
// buffered, and every goroutine ends (the bubble would report one left
// behind; TestMain checks the package as a whole).
func TestCloseWithBufferedMessages(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const buffer = 4
		b := newBroker(t, memory.Config{DeliveryBuffer: buffer})
		g := newGated()
		if err := b.Start(context.Background(), g.deliver); err != nil {
			t.Fatal(err)
		}
		ch := core.RoomChannel("r")
		for range buffer + 1 {
			publish(t, b, ch)
		}
		published := make(chan error)
		go func() {
			_, err := publishTo(b, context.Background(), ch, &core.Envelope{V: core.Version, Type: core.TypeMessage, Room: "r"})
			published <- err
		}()
		closed := make(chan error)
		go func() { closed <- b.Close(context.Background()) }()
		synctest.Wait() // Close is waiting for the stuck callback
		if err := <-published; err != nil && !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Publish waiting for buffer space during Close = %v, want nil or ErrClosed", err)
		}
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) while a callback was running", err)
		default:
		}
		close(g.gate)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if got := g.delivered(); len(got) != 1 {
			t.Errorf("delivered %d messages after Close, want only the one in progress", len(got))
		}
		if _, err := publishTo(b, context.Background(), ch, &core.Envelope{V: core.Version, Type: core.TypeMessage}); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Publish after Close = %v, want ErrClosed", err)
		}
	})
}
