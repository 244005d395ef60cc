package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/test/load/edgeproc"
)

// serverKind is a server the tool can load: Switchboard's edge or one of
// the peers under test/load/peers, each a nested module with its own
// go.mod. Every kind answers GET /healthz and GET /stats with at least
// Switchboard's connections, goroutines, heap_bytes and sys_bytes, so the
// scenarios observe them all the same way.
type serverKind struct {
	name string
	peer bool // built from test/load/peers/<name>
	// subscribe opens a subscriber per transport; missing: unsupported.
	subscribe map[string]subscribeFunc
	// publishPath takes a POST of publish envelopes, one per line
	// (peers read only their room and data).
	publishPath string
	// probe is POSTed once before a run; probeOK checks the answer.
	probe   []byte
	probeOK func(resp []byte) bool
	// replies counts the answer to a POST of sent envelopes.
	replies func(resp []byte, sent int64) (acks, errs int64, msg string)
}

var (
	switchboard = &serverKind{
		name: "switchboard",
		subscribe: map[string]subscribeFunc{
			"websocket": subscribeWS,
			"sse":       subscribeSSE,
			"longpoll":  subscribePoll,
		},
		publishPath: "/send",
		probe:       []byte(`{"v":1,"type":"ping"}`),
		probeOK:     func(resp []byte) bool { return bytes.Contains(resp, []byte(`"type":"pong"`)) },
		replies:     switchboardReplies,
	}
	// fiberPeer speaks a subset of Switchboard's WebSocket handshake
	// (/ws?rooms=…, a welcome first), so it shares its subscriber.
	fiberPeer = &serverKind{
		name: "fiber", peer: true,
		subscribe:   map[string]subscribeFunc{"websocket": subscribeWS},
		publishPath: "/publish",
		probeOK:     func(resp []byte) bool { return bytes.Contains(resp, []byte(`"published":0`)) },
		replies:     peerReplies,
	}
	centrifugePeer = &serverKind{
		name: "centrifuge", peer: true,
		subscribe:   map[string]subscribeFunc{"websocket": subscribeCentrifuge},
		publishPath: "/publish",
		probeOK:     func(resp []byte) bool { return bytes.Contains(resp, []byte(`"published":0`)) },
		replies:     peerReplies,
	}
	serverKinds = []*serverKind{switchboard, fiberPeer, centrifugePeer}
)

func serverKindNames() []string {
	var names []string
	for _, k := range serverKinds {
		names = append(names, k.name)
	}
	return names
}

func kindByName(name string) *serverKind {
	for _, k := range serverKinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// switchboardReplies counts the ack and error envelopes of a POST /send.
func switchboardReplies(resp []byte, _ int64) (acks, errs int64, msg string) {
	acks = int64(bytes.Count(resp, []byte(`"type":"ack"`)))
	errs = int64(bytes.Count(resp, []byte(`"type":"error"`)))
	if errs > 0 {
		msg = string(resp)
	}
	return acks, errs, msg
}

// peerReplies counts a peer's answer to POST /publish: {"published":n},
// with "error" when a line failed (the rest of the body is not published).
func peerReplies(resp []byte, sent int64) (acks, errs int64, msg string) {
	mark := []byte(`"published":`)
	i := bytes.Index(resp, mark)
	if i < 0 {
		return 0, sent, fmt.Sprintf("unexpected answer: %.300s", resp)
	}
	n, _ := parseUint(resp[i+len(mark):])
	acks = min(n, sent)
	if acks < sent || bytes.Contains(resp, []byte(`"error"`)) {
		msg = strings.TrimSpace(string(resp))
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	return acks, sent - acks, msg
}

// serverSpec is how to reach one server of a run: a binary to start, or
// the address of a running one (--url).
type serverSpec struct {
	kind *serverKind
	bin  string // start this; "" with url
	url  string // http://127.x.x.x:port of a running server
	pid  int    // with url: --server-pid
}

// resolveServers returns one spec per --peer, building peer binaries
// that --peer-bin does not name into a temporary directory, removed by
// cleanup.
func resolveServers(ctx context.Context, o options, status func(string)) (specs []serverSpec, cleanup func(), err error) {
	cleanup = func() {}
	if o.url != "" {
		return []serverSpec{{kind: kindByName(o.peers[0]), url: o.url, pid: o.serverPID}}, cleanup, nil
	}
	var tmp string
	for _, name := range o.peers {
		k := kindByName(name)
		spec := serverSpec{kind: k, bin: o.serverBin}
		if k.peer {
			spec.bin = o.peerBins[name]
			if spec.bin == "" {
				if tmp == "" {
					if tmp, err = os.MkdirTemp("", "switchboard-load-peers-"); err != nil {
						return nil, cleanup, err
					}
					dir := tmp
					cleanup = func() { _ = os.RemoveAll(dir) }
				}
				spec.bin = filepath.Join(tmp, name)
				status(fmt.Sprintf("building the %s peer", name))
				if err := buildPeer(ctx, o.peersDir, name, spec.bin); err != nil {
					cleanup()
					return nil, func() {}, err
				}
			}
		}
		specs = append(specs, spec)
	}
	return specs, cleanup, nil
}

// buildPeer runs `go build -o out .` in the peer's module directory:
// peersDir/name, or test/load/peers/name found from the working directory
// upwards. The Go module proxy supplies its dependencies.
func buildPeer(ctx context.Context, peersDir, name, out string) error {
	dir, err := findPeerDir(peersDir, name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the %s peer (go build in %s): %w\n%s", name, dir, err, b)
	}
	return nil
}

func findPeerDir(peersDir, name string) (string, error) {
	if peersDir != "" {
		dir := filepath.Join(peersDir, name)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			return "", fmt.Errorf("--peers-dir: %w", err)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, "test", "load", "peers", name)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no test/load/peers/%s/go.mod above %s: run from the repository or give --peers-dir or --peer-bin", name, wd)
		}
	}
}

// edgeTarget is a server a run loads, and how to observe and stop it.
type edgeTarget struct {
	target
	pid  int // 0: unknown (no /proc readings)
	proc *edgeproc.Process
}

// startServer starts spec's binary (or checks the running server) and
// waits until it is healthy. extra are more flags for a started
// Switchboard edge.
func startServer(ctx context.Context, o options, spec serverSpec, extra ...string) (*edgeTarget, error) {
	if spec.url != "" {
		host := strings.TrimPrefix(spec.url, "http://")
		t := &edgeTarget{target: target{host: host, kind: spec.kind}, pid: spec.pid}
		if err := edgeproc.WaitHealthy(ctx, t.httpBase(), nil); err != nil {
			return nil, err
		}
		return t, nil
	}
	var args []string
	if !spec.kind.peer {
		args = append(append(append(args, serverFlags...), extra...), o.serverArgs...)
	}
	if spec.kind == centrifugePeer && o.compress != compressOff {
		// Centrifuge's own permessage-deflate, at its peer's defaults
		// (level 6, frames over 256 bytes), like Switchboard's.
		args = append(args, "--compression")
	}
	p, addr, err := edgeproc.Start(edgeproc.Options{Bin: spec.bin, Args: args, CPU: o.serverCPU})
	if err != nil {
		return nil, err
	}
	t := &edgeTarget{target: target{host: addr, kind: spec.kind}, pid: p.PID(), proc: p}
	if err := edgeproc.WaitHealthy(ctx, t.httpBase(), p.Exited()); err != nil {
		t.stop()
		return nil, fmt.Errorf("%s: %w\nserver log:\n%s", spec.kind.name, err, p.LogTail())
	}
	return t, nil
}

func (t *edgeTarget) stop() {
	if t.proc != nil {
		t.proc.Stop(5 * time.Second)
	}
}

// withLog adds the server's last log lines to err.
func (t *edgeTarget) withLog(err error) error {
	if err == nil || t == nil || t.proc == nil {
		return err
	}
	if tail := t.proc.LogTail(); tail != "" {
		return fmt.Errorf("%w\n%s log (last lines):\n%s", err, t.server().name, tail)
	}
	return err
}

// parsePeers reads --peer: a comma-separated list of server kinds.
func parsePeers(s string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if kindByName(name) == nil {
			return nil, fmt.Errorf("--peer %q: use one or more of %s, comma-separated", name, strings.Join(serverKindNames(), ", "))
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("--peer: %s is listed twice", name)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, errors.New("--peer: empty")
	}
	return out, nil
}
