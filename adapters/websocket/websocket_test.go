package websocket

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

func TestReadAtMost(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 6, "hello "},
		{"", 3, ""},
	}
	for _, tc := range cases {
		// OneByteReader forces many short reads and buffer growth.
		got, err := readAtMost(iotest.OneByteReader(strings.NewReader(tc.in)), make([]byte, 0, 2), tc.n)
		if err != nil || string(got) != tc.want {
			t.Errorf("readAtMost(%q, %d) = %q, %v; want %q", tc.in, tc.n, got, err, tc.want)
		}
	}
	if _, err := readAtMost(iotest.ErrReader(errors.New("boom")), nil, 4); err == nil {
		t.Error("read error not returned")
	}
}

// serveNode runs the handler on 127.0.0.1:0 and returns its ws:// URL.
func serveNode(t *testing.T, cfg core.Config) string {
	t.Helper()
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(cfg, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/ws", New(node, Config{CloseGrace: time.Second}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = app.ShutdownWithContext(ctx)
		if err := node.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// TestFrameSizeLimit: a frame of exactly MaxMessageSize is processed; one
// byte more closes the connection with 4003.
func TestFrameSizeLimit(t *testing.T) {
	const limit = 1024
	url := serveNode(t, core.Config{MaxMessageSize: limit})
	frame := func(size int) []byte {
		head, tail := `{"v":1,"type":"ping","ref":"r","data":"`, `"}`
		return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
	}
	conn, _, err := fws.DefaultDialer.Dial(url+"?user=u", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"welcome"`)) {
		t.Fatalf("welcome: %s %v", m, err)
	}
	if err := conn.WriteMessage(fws.TextMessage, frame(limit)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := conn.ReadMessage(); err != nil || !bytes.Contains(m, []byte(`"pong"`)) {
		t.Fatalf("frame at the limit: got %s %v, want pong", m, err)
	}
	if err := conn.WriteMessage(fws.TextMessage, frame(limit+1)); err != nil {
		t.Fatal(err)
	}
	_, _, err = conn.ReadMessage()
	var ce *fws.CloseError
	if !errors.As(err, &ce) || ce.Code != 4003 || ce.Text != "message too large" {
		t.Fatalf("err = %v, want close 4003 message too large", err)
	}
}
