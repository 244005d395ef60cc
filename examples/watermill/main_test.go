package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchboard-dev/switchboard/broker"
	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a node, a Watermill publisher or
// subscriber, or a Redis client leaves a goroutine behind.
func TestMain(m *testing.M) { coretest.VerifyNone(m) }

// waitFor bounds every wait: it matters only when something is broken.
const waitFor = 30 * time.Second

var quiet = watermill.NopLogger{}

// The example spells Switchboard's names itself (a Watermill application
// needs nothing of Switchboard's); they must stay Switchboard's.
func TestNamesMatchSwitchboard(t *testing.T) {
	if metadataChannel != broker.MetadataChannel || defaultStream != sbredis.DefaultStream || defaultMaxLen != sbredis.DefaultMaxLen {
		t.Fatalf("example's names %q %q %d, Switchboard's %q %q %d", metadataChannel, defaultStream, defaultMaxLen,
			broker.MetadataChannel, sbredis.DefaultStream, sbredis.DefaultMaxLen)
	}
}

// fixture is a real redis-server and a Switchboard node on it, logging
// into logs.
type fixture struct {
	url  string
	node *core.Node
	logs *syncBuffer
}

func start(t *testing.T) *fixture {
	t.Helper()
	srv := redistest.Start(t) // stopped last: cleanups run last-in first-out
	f := &fixture{url: srv.URL, logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(f.logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := sbredis.New(ctx, sbredis.Config{URL: srv.URL}, logger) // stream "switchboard"
	if err != nil {
		t.Fatal(err)
	}
	if f.node, err = core.NewNode(core.Config{}, b, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := f.node.Shutdown(ctx); err != nil { // ends the sessions, closes the broker
			t.Errorf("shutdown: %v", err)
		}
	})
	return f
}

// join connects a client to the node in room and reads its welcome.
func (f *fixture) join(t *testing.T, room string) *coretest.Transport {
	t.Helper()
	tr := coretest.NewTransport()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := f.node.Accept(ctx, tr, core.ConnectRequest{Credentials: core.Credentials{User: "ada"}, Rooms: []string{room}}); err != nil {
		t.Fatal(err)
	}
	if env := next(t, tr); env.Type != core.TypeWelcome {
		t.Fatalf("first envelope %+v, want welcome", env)
	}
	t.Cleanup(func() {
		if err := tr.Err(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

// next is the client's next envelope.
func next(t *testing.T, tr *coretest.Transport) *core.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	env, err := tr.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for an envelope: %v", err)
	}
	return env
}

// newestEntryID is the ID of the stream's newest entry.
func newestEntryID(t *testing.T, url string) string {
	t.Helper()
	client, err := newClient(url)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	last, err := client.XRevRangeN(ctx, defaultStream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("XREVRANGE: %v %v", last, err)
	}
	return last[0].ID
}

// A Watermill application publishes into Switchboard's stream; the node
// delivers the message to the room's client, with the log's id.
func TestWatermillPublishesToRoom(t *testing.T) {
	t.Parallel()
	f := start(t)
	client := f.join(t, "lobby")

	// The command of this example: a plain watermill-redisstream Publisher.
	err := run(context.Background(), []string{"publish", "-redis", f.url, "-room", "lobby", "-data", `{"text": "hi"}`}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	env := next(t, client)
	if env.Type != core.TypeMessage || env.Room != "lobby" || string(env.Data) != `{"text":"hi"}` {
		t.Fatalf("client got %+v", env)
	}
	// The id is "<epoch>-<entry ID>": the message's position in the log.
	if entry := newestEntryID(t, f.url); !strings.HasSuffix(env.ID, "-"+entry) {
		t.Fatalf("id %q is not the position of entry %s", env.ID, entry)
	}
}

// A Watermill subscriber reads what Switchboard publishes: the channel in
// metadata, the envelope JSON as payload.
func TestWatermillReadsSwitchboard(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	sub, msgs, err := subscribe(ctx, f.url, defaultStream, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Published right after subscribe returns: the pinned start misses
	// none of them (watermill-redisstream's default "$" would).
	texts := []string{"one", "two", "three"}
	for _, text := range texts {
		data, _ := json.Marshal(map[string]string{"text": text})
		env := &core.Envelope{Type: core.TypeMessage, Room: "lobby", Data: data}
		if _, err := f.node.Publish(ctx, core.RoomChannel("lobby"), env); err != nil {
			t.Fatal(err)
		}
	}

	for _, text := range texts {
		var msg *message.Message
		select {
		case msg = <-msgs:
		case <-ctx.Done():
		}
		if msg == nil {
			t.Fatalf("waiting for %q: %v", text, ctx.Err())
		}
		msg.Ack()
		var env envelope
		if err := json.Unmarshal(msg.Payload, &env); err != nil {
			t.Fatalf("payload %s: %v", msg.Payload, err)
		}
		want := `{"text":"` + text + `"}`
		if ch := msg.Metadata.Get(metadataChannel); ch != "room:lobby" ||
			env.V != 1 || env.Type != "message" || env.Room != "lobby" || string(env.Data) != want || env.ID != "" {
			t.Fatalf("got channel %q payload %s, want room:lobby and a message with data %s and no id", ch, msg.Payload, want)
		}
	}

	// The tail command prints the same, here from the stream's start. It
	// runs until its context ends, which also bounds the wait for a line.
	out, w := io.Pipe()
	tctx, stop := context.WithTimeout(context.Background(), waitFor)
	defer stop()
	done := make(chan error, 1)
	go func() {
		err := run(tctx, []string{"tail", "-redis", f.url, "-from", "0"}, w)
		w.CloseWithError(err)
		done <- err
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	out.Close() // the lines after the first fail to print
	stop()
	if err != nil || !strings.HasPrefix(line, `room:lobby {"v":1,"type":"message","room":"lobby","data":{"text":"one"}`) {
		t.Fatalf("tail printed %q (%v)", line, err)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("tail returned %v, want context.Canceled", err)
	}
}

// An entry from a foreign producer without switchboard_channel is skipped
// by the node, logged and counted; the next good one is delivered.
func TestForeignMessageSkipped(t *testing.T) {
	t.Parallel()
	f := start(t)
	client := f.join(t, "lobby")
	pub, err := newPublisher(f.url, 0, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	before := broker.Malformed()

	foreign := message.NewMessage(watermill.NewUUID(), []byte(`{"order":42}`)) // no metadata
	good, err := roomMessage("lobby", "after")
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(defaultStream, foreign, good); err != nil {
		t.Fatal(err)
	}

	// The node reads the log in order: once the good message is here, the
	// foreign one has been skipped.
	if env := next(t, client); env.Type != core.TypeMessage || string(env.Data) != `"after"` {
		t.Fatalf("client got %+v, want the good message", env)
	}
	if n := broker.Malformed() - before; n != 1 {
		t.Fatalf("broker.Malformed() rose by %d, want 1", n)
	}
	if logs := f.logs.String(); !strings.Contains(logs, "skipping malformed log entry") || !strings.Contains(logs, "no switchboard_channel metadata (uuid "+foreign.UUID+")") {
		t.Fatalf("no log line for the skipped entry:\n%s", logs)
	}
}

// syncBuffer is a bytes.Buffer for a logger used from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
