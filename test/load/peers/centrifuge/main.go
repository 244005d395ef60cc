// Command centrifuge is the load tool's reference peer (issue #7): a server
// on github.com/centrifugal/centrifuge, the library at the core of
// Centrifugo, with its own WebSocket handler and client protocol, so that
// Switchboard's numbers can be read as ratios against it.
//
// It lives in its own module so that it never enters Switchboard's go.mod;
// test/load builds it with `go build` in this directory.
//
//	GET  /connection/websocket  Centrifuge's WebSocket handler (JSON protocol)
//	POST /publish               body: one JSON object per line,
//	                            {"room":"a","data":…} (other fields are
//	                            ignored, so a Switchboard publish envelope
//	                            works); each is node.Publish(room, data);
//	                            answers {"published":n}
//	GET  /stats                 {"connections","goroutines","heap_bytes","sys_bytes"}
//	GET  /healthz               200
//
// Subscriptions are server-side: the client names its channels in the
// connect command, {"id":1,"connect":{"subs":{"a":{}}}}, and OnConnecting
// subscribes the connection to each of them, so the connect reply confirms
// the subscriptions in one round trip and publications then arrive as
// pushes, {"push":{"channel":"a","pub":{"data":…}}}. Connections are
// anonymous (user "load"). Everything else is Centrifuge's defaults (16
// messages per frame, 1 s write timeout, server pings every 25 s that the
// client answers with {}).
//
// Two modes:
//
//   - Without --redis-url (the default): the in-memory broker, and channels
//     have no history, positioning or presence: a plain broadcast, like
//     the other servers measured.
//   - With --redis-url redis://127.0.0.1:PORT: Centrifuge's Redis broker
//     (one shard, history in a Redis stream per channel, as Centrifugo
//     keeps it), so several peers on one Redis act as one cluster. Every
//     subscription has recovery and positioning on, and /publish keeps
//     --history-size publications per channel for --history-ttl. A client
//     resumes by naming its position in the connect command,
//     {"subs":{"a":{"recover":true,"epoch":"…","offset":41}}}, and the
//     connect reply says per channel whether it "recovered" and carries
//     the missed "publications". No presence. --node-name names the node
//     (in /stats), so two peers on one Redis can be told apart.
//
// --compression turns on Centrifuge's own WebSocket permessage-deflate
// (WebsocketConfig.Compression) for clients that offer it, at
// --compression-level (default 6) for frames longer than
// --compression-min-size bytes (default 256), to mirror Switchboard's
// defaults. Centrifuge compresses each frame on each connection (its
// experimental prepared-message cache stays off, as it is by default).
//
// --addr and --redis-url must be loopback addresses. SIGTERM or SIGINT
// shuts the node down (which disconnects every client) and stops.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

// options are the peer's flags.
type options struct {
	addr        string
	redisURL    string // "": in-memory broker
	nodeName    string
	historySize int
	historyTTL  time.Duration

	compression        bool
	compressionLevel   int
	compressionMinSize int
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8091", "listen address (loopback only)")
	flag.StringVar(&o.redisURL, "redis-url", "", "redis://127.0.0.1:PORT[/db]: use Centrifuge's Redis broker with stream history and recovery (empty: in-memory broker, no history)")
	flag.StringVar(&o.nodeName, "node-name", "", "name of this node (default: the listen address)")
	flag.IntVar(&o.historySize, "history-size", 1000, "with --redis-url: publications kept per channel")
	flag.DurationVar(&o.historyTTL, "history-ttl", 5*time.Minute, "with --redis-url: how long a channel's history is kept after its last publication")
	flag.BoolVar(&o.compression, "compression", false, "WebSocket permessage-deflate for clients that offer it (Centrifuge's WebsocketConfig.Compression)")
	flag.IntVar(&o.compressionLevel, "compression-level", 6, "with --compression: the deflate level, 1 (fastest) to 9 (smallest)")
	flag.IntVar(&o.compressionMinSize, "compression-min-size", 256, "with --compression: frames longer than this many bytes are compressed, shorter ones go as they are")
	flag.Parse()
	if err := run(o); err != nil {
		log.Fatalf("centrifuge peer: %v", err)
	}
}

// checkLoopback fails unless hostport's host is a loopback IP.
func checkLoopback(flagName, hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagName, hostport, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: only loopback addresses", flagName, hostport)
	}
	return nil
}

// redisAddr checks a redis://host:port[/db] URL and returns it.
func redisAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.Port() == "" {
		return "", fmt.Errorf("--redis-url %q: want redis://127.0.0.1:PORT[/db]", raw)
	}
	if err := checkLoopback("--redis-url", u.Host); err != nil {
		return "", err
	}
	return raw, nil
}

func run(o options) error {
	if err := checkLoopback("--addr", o.addr); err != nil {
		return err
	}
	if o.nodeName == "" {
		o.nodeName = o.addr
	}
	if o.historySize < 1 || o.historyTTL <= 0 {
		return errors.New("--history-size and --history-ttl must be positive")
	}
	if o.compressionLevel < 1 || o.compressionLevel > 9 || o.compressionMinSize < 0 {
		return errors.New("--compression-level must be 1 to 9 and --compression-min-size not negative")
	}
	node, err := centrifuge.New(centrifuge.Config{
		Name:     o.nodeName,
		LogLevel: centrifuge.LogLevelError, // into the load tool's log tail on a failure
		LogHandler: func(e centrifuge.LogEntry) {
			log.Printf("%s: %s %v", centrifuge.LogLevelToString(e.Level), e.Message, e.Fields)
		},
	})
	if err != nil {
		return err
	}
	var pubOpts []centrifuge.PublishOption
	subOpts := centrifuge.SubscribeOptions{}
	if o.redisURL != "" {
		addr, err := redisAddr(o.redisURL)
		if err != nil {
			return err
		}
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: addr})
		if err != nil {
			return fmt.Errorf("redis shard: %w", err)
		}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{shard}})
		if err != nil {
			return fmt.Errorf("redis broker: %w", err)
		}
		node.SetBroker(broker)
		pubOpts = append(pubOpts, centrifuge.WithHistory(o.historySize, o.historyTTL))
		subOpts = centrifuge.SubscribeOptions{EnableRecovery: true, EnablePositioning: true, RecoveryMode: centrifuge.RecoveryModeStream}
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		subs := make(map[string]centrifuge.SubscribeOptions, len(e.Channels))
		for _, ch := range e.Channels {
			subs[ch] = subOpts
		}
		return centrifuge.ConnectReply{
			Credentials:   &centrifuge.Credentials{UserID: "load"},
			Subscriptions: subs,
		}, nil
	})
	if err := node.Run(); err != nil {
		return err
	}

	mux := http.NewServeMux()
	wsConfig := centrifuge.WebsocketConfig{}
	if o.compression {
		wsConfig.Compression = true
		wsConfig.CompressionLevel = o.compressionLevel
		wsConfig.CompressionMinSize = o.compressionMinSize
	}
	mux.Handle("GET /connection/websocket", centrifuge.NewWebsocketHandler(node, wsConfig))
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		n, err := publish(node, r, pubOpts)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, errPublish) {
				status = http.StatusServiceUnavailable
			}
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"published": n, "error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"published": n})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"connections": node.Hub().NumClients(), "goroutines": runtime.NumGoroutine(),
			"heap_bytes": ms.HeapAlloc, "sys_bytes": ms.Sys, "node": o.nodeName,
		})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Hijacked WebSocket connections are not tracked by http.Server: the
	// node disconnects its clients.
	err = errors.Join(node.Shutdown(sctx), srv.Shutdown(sctx))
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// publishLine is what /publish reads from each line of its body.
type publishLine struct {
	Room string          `json:"room"`
	Data json.RawMessage `json:"data"`
}

// errPublish marks a failed node.Publish (503), as opposed to a bad body
// (400).
var errPublish = errors.New("publish failed")

// publish publishes every line of the request body with opts and returns
// how many were published.
func publish(node *centrifuge.Node, r *http.Request, opts []centrifuge.PublishOption) (int, error) {
	body, err := readBody(r)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var p publishLine
		if err := json.Unmarshal(line, &p); err != nil || p.Room == "" {
			return n, fmt.Errorf("line %d: want {\"room\":…,\"data\":…}", n+1)
		}
		if len(p.Data) == 0 {
			p.Data = json.RawMessage("null")
		}
		if _, err := node.Publish(p.Room, p.Data, opts...); err != nil {
			return n, fmt.Errorf("%w: to %q: %w", errPublish, p.Room, err)
		}
		n++
	}
	return n, nil
}

func readBody(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, 16<<20))
	return b.Bytes(), err
}
