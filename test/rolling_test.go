package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
)

// cluster is the set of edge processes currently accepting clients.
type cluster struct {
	mu   sync.Mutex
	live []string
}

func (c *cluster) nodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.live)
}

func (c *cluster) set(live ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
}

// follower is a subscriber that behaves like the browser client: when its
// connection ends it reconnects to a live node with since=<last id>.
type follower struct {
	t     *testing.T
	user  string
	seqs  []int
	last  string
	codes []int // close codes received, one per reconnection
	lost  int   // welcomes that said recovered:false
	done  chan struct{}
	err   error
}

func (f *follower) run(c *cluster, first string, want int) {
	defer close(f.done)
	addr := first
	for attempt := 0; attempt < 200; attempt++ {
		query := q("user", f.user, "rooms", "roll")
		if f.last != "" {
			query = q("user", f.user, "rooms", "roll", "since", f.last)
		}
		cl, err := tryDial(f.t, (&edge{addr: addr}).url(query))
		if err != nil { // a node draining (503) or gone: try another
			nodes := c.nodes()
			addr = nodes[attempt%len(nodes)]
			continue
		}
		cl.read()
		w, ok := <-cl.envs
		if !ok || w.Type != core.TypeWelcome {
			f.err = fmt.Errorf("%s: no welcome: %v", f.user, cl.err)
			return
		}
		if f.last != "" && !bytes.Contains(w.Data, []byte(`"recovered":true`)) {
			f.lost++
		}
		for env := range cl.envs {
			if env.Type != core.TypeMessage {
				continue
			}
			var d struct{ Seq int }
			if err := json.Unmarshal(env.Data, &d); err != nil {
				f.err = fmt.Errorf("%s: data of %s: %w", f.user, env.Encode(), err)
				return
			}
			f.seqs = append(f.seqs, d.Seq)
			f.last = env.ID
			if len(f.seqs) == want {
				_ = cl.conn.Close()
				return
			}
		}
		f.codes = append(f.codes, closeCode(cl.err))
		nodes := c.nodes()
		addr = nodes[attempt%len(nodes)]
	}
	f.err = fmt.Errorf("%s: gave up reconnecting with %d of %d messages", f.user, len(f.seqs), want)
}

// closeCode is the WebSocket close code of a read error (0: none).
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// TestRollingRestart restarts both edges of a two-node Redis deployment,
// one after the other, with SIGTERM while a backend publishes through the
// server API: every subscriber is told 1012, resumes on the other node,
// and ends up with every message exactly once and in order, connected.
func TestRollingRestart(t *testing.T) {
	const total = 300
	rs := redistest.Start(t)
	args := []string{"--broker", "redis", "--broker-url", rs.URL, "--api-keys", apiKey, "--rate-limit", "-1", "--shutdown-timeout", "5s"}
	cmdA, addrA, logsA := startBinary(t, args...)
	cmdB, addrB, logsB := startBinary(t, args...)
	c := &cluster{}
	c.set(addrA, addrB)

	followers := make([]*follower, 8)
	for i := range followers {
		followers[i] = &follower{t: t, user: fmt.Sprintf("f%d", i), done: make(chan struct{})}
		go followers[i].run(c, []string{addrA, addrB}[i%2], total)
	}
	// Every follower is in the room on its node before publishing starts.
	for _, a := range []string{addrA, addrB} {
		eventually(t, "4 followers on "+a, func() bool {
			var st core.Stats
			return getJSON(t, "http://"+a+"/stats", &st) == 200 && st.Connections == 4
		})
	}

	// The backend publishes with an idempotency key per message, retrying
	// on another node when one refuses or disappears.
	published := make(chan int, total)
	go func() {
		defer close(published)
		for i := 0; i < total; i++ {
			body := fmt.Sprintf(`{"room":"roll","data":{"seq":%d},"idempotency_key":"roll-%d"}`, i, i)
			for attempt := 0; ; attempt++ {
				nodes := c.nodes()
				req, _ := http.NewRequest(http.MethodPost, "http://"+nodes[attempt%len(nodes)]+"/api/v1/publish", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+apiKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted {
						break
					}
				}
				if attempt > 100 {
					t.Errorf("message %d not accepted by any node", i)
					return
				}
			}
			published <- i
			time.Sleep(3 * time.Millisecond) // pacing the load, not synchronisation
		}
	}()
	restart := func(cmd *exec.Cmd, logs *syncBuffer, old, other string) string {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		c.set(other) // the balancer takes the draining node out
		<-logs.eof   // read stderr to its end before Wait closes the pipe
		if err := cmd.Wait(); err != nil {
			t.Fatalf("edge %s after SIGTERM: %v\n%s", old, err, logs)
		}
		_, addr, _ := startBinary(t, args...)
		c.set(other, addr)
		return addr
	}
	for i := range published {
		switch i {
		case 60:
			addrA = restart(cmdA, logsA, addrA, addrB)
		case 180:
			restart(cmdB, logsB, addrB, addrA)
		}
	}
	for _, f := range followers {
		select {
		case <-f.done:
		case <-time.After(2 * waitFor):
			t.Fatalf("%s still waiting with %d of %d messages", f.user, len(f.seqs), total)
		}
		if f.err != nil {
			t.Fatal(f.err)
		}
		for i, s := range f.seqs {
			if s != i {
				t.Fatalf("%s: message %d is seq %d (lost or duplicated around %v)", f.user, i, s, f.seqs[max(0, i-3):min(len(f.seqs), i+3)])
			}
		}
		if f.lost != 0 {
			t.Errorf("%s: %d resumes said recovered:false", f.user, f.lost)
		}
		if !slices.Contains(f.codes, 1012) {
			t.Errorf("%s: close codes %v, want 1012 from a draining node", f.user, f.codes)
		}
	}
}
