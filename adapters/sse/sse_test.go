package sse

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

func TestEnvelopeID(t *testing.T) {
	cases := []struct {
		env  core.Envelope
		want string
	}{
		{core.Envelope{ID: "1700000000000-0", Type: core.TypeMessage, Room: "r"}, "1700000000000-0"},
		{core.Envelope{Type: core.TypeWelcome}, ""},
		{core.Envelope{ID: `a"b`, Type: core.TypeDirect}, `a"b`},
		{core.Envelope{ID: "a\nb", Type: core.TypeDirect}, ""}, // would break the event framing
	}
	for _, tc := range cases {
		if got := envelopeID(tc.env.Encode()); got != tc.want {
			t.Errorf("envelopeID(%s) = %q, want %q", tc.env.Encode(), got, tc.want)
		}
	}
}

// TestNodeShutdownEndsStream: when the node shuts down first (not the
// HTTP server), the session's 1012 close event ends the stream and the
// callback returns, leaving no goroutine behind (TestMain checks).
func TestNodeShutdownEndsStream(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/sse", New(node, Config{Retry: 1500 * time.Millisecond}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()

	resp, err := http.Get("http://" + ln.Addr().String() + "/sse?user=u&rooms=r")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line := func() string {
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimSuffix(s, "\n")
	}
	if l := line(); l != "retry: 1500" {
		t.Fatalf("first line %q", l)
	}
	line()
	if l := line(); !strings.HasPrefix(l, `data: {"v":1,"type":"welcome"`) {
		t.Fatalf("welcome line %q", l)
	}
	line()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if l := line(); l != "event: close" {
		t.Fatalf("got %q, want the close event", l)
	}
	if l := line(); l != `data: {"code":1012,"reason":"service restart","reconnect":true}` {
		t.Fatalf("close data %q", l)
	}
	line()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q %v, want the end of the stream", rest, err)
	}
}
