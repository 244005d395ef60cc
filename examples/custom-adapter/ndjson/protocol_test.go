package ndjson_test

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/examples/custom-adapter/ndjson"
)

// serve starts a node (with cfg) and the NDJSON listener; it returns the address.
func serve(t *testing.T, cfg core.Config) string {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The hello wait starts when the server accepts; the tests write their
	// input right after dialling, but a loaded machine may pause them in
	// between, so the wait is long enough never to be what a test sees.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- ndjson.Serve(ctx, node, ln, ndjson.Config{HelloTimeout: time.Minute, CloseGrace: time.Second})
	}()
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// lines sends input on a new connection and returns every line the server
// writes until it closes.
func lines(t *testing.T, addr, input string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read: %v (after %q)", err, out)
	}
	return out
}

func TestBadHello(t *testing.T) {
	addr := serve(t, core.Config{})
	got := lines(t, addr, "not a hello\n")
	want := `{"v":1,"type":"close","data":{"code":1002,"reason":"bad hello","reconnect":false}}`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want only %s", got, want)
	}
}

func TestLineTooLong(t *testing.T) {
	addr := serve(t, core.Config{MaxMessageSize: 1024})
	got := lines(t, addr, `{"user":"u"}`+"\n"+strings.Repeat("x", 2048)+"\n")
	// 4003 does not flush the queue, so the welcome may or may not be
	// written first; the close line is always last.
	if len(got) == 0 || !strings.Contains(got[len(got)-1], `"code":4003`) {
		t.Fatalf("got %q, want a 4003 close line last", got)
	}
}
