package core

import (
	"runtime"
	"sync"
)

// writers is the node's pool of writer goroutines for transports that
// can write without blocking (TryWriter): a session with something to
// send is queued here instead of starting a goroutine, and a worker
// writes everything it has queued by then in one batch. A session the
// pool cannot serve without blocking (a full socket, a ping, a close, a
// replay) goes to a goroutine of its own (Session.writer), as every
// session of other transports does, so a slow client never holds a
// worker.
//
// The workers start with the first session queued and stop in Shutdown,
// after every session has ended.
type writers struct {
	work chan *Session
	stop chan struct{}
	once sync.Once
	n    int // workers started
	wg   sync.WaitGroup
}

// writerQueue bounds the sessions waiting for a worker; beyond it a
// session gets a goroutine of its own.
const writerQueue = 1 << 14

func newWriters() *writers {
	return &writers{work: make(chan *Session, writerQueue), stop: make(chan struct{})}
}

// submit queues s, whose writer flag is set, for a worker; false when the
// queue is full or the pool stopped.
func (w *writers) submit(s *Session) bool {
	w.once.Do(w.start)
	select {
	case <-w.stop:
		return false
	default:
	}
	select {
	case w.work <- s:
		return true
	default:
		return false
	}
}

func (w *writers) start() {
	w.n = runtime.GOMAXPROCS(0)
	for range w.n {
		w.wg.Go(w.run)
	}
}

// run writes the sessions queued until close sends it nil. A plain
// receive, not a select with stop: it is taken once per recipient of
// every message, and a select costs several times as much.
func (w *writers) run() {
	for s := range w.work {
		if s == nil {
			return
		}
		s.writeQueued()
	}
}

// close stops the workers. Every session has ended: none is queued, and
// none is submitted from now on, so each worker's nil is the next thing
// it receives.
func (w *writers) close() {
	started := true
	w.once.Do(func() { started = false }) // a pool never started stays stopped
	select {
	case <-w.stop:
	default:
		close(w.stop)
		if started {
			for range w.n {
				w.work <- nil
			}
		}
	}
	w.wg.Wait()
}

// writeQueued writes one batch of what s has queued, for a worker,
// without blocking, then queues s again if more came meanwhile. Anything
// else (a ping, the end, a paused replay, what the transport could not
// take at once) goes to s's own writer goroutine.
func (s *Session) writeQueued() {
	s.mu.Lock()
	if s.closing != nil || s.pingDue || s.pause != nil || s.owed {
		s.mu.Unlock()
		go s.writer()
		return
	}
	if s.n == 0 {
		s.writing = false
		s.slow = false
		s.mu.Unlock()
		return
	}
	batch := s.takeBatchLocked()
	s.mu.Unlock()

	written, err := s.tw.TryWriteMany(batch)
	if err == nil {
		s.out.Add(uint64(len(batch))) // written, or owed to FlushPending
	}
	clear(batch)
	s.mu.Lock()
	s.batch = batch
	switch {
	case err != nil:
		s.writeFailedLocked(err)
	case !written:
		s.owed = true
	case s.n == 0 && s.closing == nil && !s.pingDue && s.pause == nil:
		s.writing = false
		s.slow = false
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err != nil || !written || !s.node.writers.submit(s) {
		go s.writer()
	}
}
