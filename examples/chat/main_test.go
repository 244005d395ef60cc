package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/server"
	"github.com/switchboard-dev/switchboard/examples/chat/chatapp"
)

// TestTypingIsRoutedByType checks the custom "typing" type end to end: a
// registered router handler relays it to the room through the broker, and
// the page is served.
func TestTypingIsRoutedByType(t *testing.T) {
	srv, err := server.New(config.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	chatapp.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET / = %v %v", resp, err)
	}
	resp.Body.Close()

	dial := func(user string) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws?rooms=lobby&user="+user, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), `"welcome"`) {
			t.Fatalf("welcome: %s %v", m, err)
		}
		return c
	}
	ann, bob := dial("ann"), dial("bob")
	if err := ann.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"typing","room":"lobby"}`)); err != nil {
		t.Fatal(err)
	}
	_, m, err := bob.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	env, err := core.UnmarshalEnvelope(m)
	if err != nil || env.Type != "typing" || env.From != "ann" || env.Room != "lobby" {
		t.Fatalf("bob got %s (%v)", m, err)
	}
	if err := ann.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"typing","room":"other","ref":"t"}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, m, err := ann.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m), `"error"`) {
			if !strings.Contains(string(m), core.CodeNotJoined) || !strings.Contains(string(m), `"ref":"t"`) {
				t.Fatalf("got %s", m)
			}
			break
		}
	}
}
