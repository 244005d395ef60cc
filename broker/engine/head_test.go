package engine

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestHeadsShared: concurrent callers share round trips, and each gets a
// head fetched after it called (never one that started before it: that
// could miss a record appended just before the call).
func TestHeadsShared(t *testing.T) {
	var fetches atomic.Uint64
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := &heads{life: context.Background(), fetch: func(context.Context) (string, Pos, error) {
		n := fetches.Add(1)
		if n == 1 {
			started <- struct{}{}
			<-release // hold the first fetch until the others queued
		}
		return "e", Pos{Lo: n}, nil
	}}
	first := make(chan Pos, 1)
	go func() {
		_, p, _ := h.get(context.Background())
		first <- p
	}()
	<-started // fetch 1 is running: everyone below arrived after it began
	const callers = 100
	var wg sync.WaitGroup
	got := make(chan Pos, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, p, err := h.get(context.Background())
			if err != nil {
				t.Error(err)
			}
			got <- p
		}()
	}
	// Let every caller join the pending fetch, then release the first.
	for {
		h.mu.Lock()
		joined := h.next != nil && h.next.waiters == callers
		h.mu.Unlock()
		if joined {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(got)
	if p := <-first; p.Lo != 1 {
		t.Fatalf("first caller got fetch %d, want 1", p.Lo)
	}
	for p := range got {
		if p.Lo < 2 {
			t.Fatalf("a caller that arrived during fetch 1 got its result: it may miss what was appended before its call")
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for %d callers, want 2 (the first, and one shared by the rest)", n, callers+1)
	}
	h.close()
	if _, _, err := h.get(context.Background()); err == nil {
		t.Fatal("get after close succeeded")
	}
}
