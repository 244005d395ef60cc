package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// Third-party WebSocket clients that offer permessage-deflate: each gets
// it, reads large messages intact (sent compressed), and sends one
// compressed that the edge reads. Each script prints READY once welcomed,
// EXT <negotiated extensions>, then one line per message received: its
// data as JSON. /usr/bin/python3 is Debian's, with python3-websockets;
// Node finds ws in the global modules (.ci/run installs both).
var interopClients = map[string]func(url string) *exec.Cmd{
	"python-websockets": func(url string) *exec.Cmd {
		return exec.Command("/usr/bin/python3", "-c", `
import asyncio, json, sys, websockets
async def main(url):
    async with websockets.connect(url, compression="deflate", max_size=2**20) as ws:
        await ws.recv()
        print("EXT", ws.response_headers.get("Sec-WebSocket-Extensions"), flush=True)
        await ws.send(json.dumps({"v": 1, "type": "publish", "room": "r", "data": {"from": "python", "pad": "p" * 3000}}))
        print("READY", flush=True)
        while True:
            for line in (await ws.recv()).split("\n"):
                env = json.loads(line)
                if env["type"] == "message":
                    print(json.dumps(env["data"], separators=(",", ":")), flush=True)
asyncio.run(main(sys.argv[1]))
`, url)
	},
	"node-ws": func(url string) *exec.Cmd {
		cmd := exec.Command("node", "-e", `
const WebSocket = require("ws");
const ws = new WebSocket(process.argv[1], { perMessageDeflate: true });
let welcomed = false;
ws.on("message", raw => {
  for (const line of raw.toString().split("\n")) {
    const env = JSON.parse(line);
    if (!welcomed) {
      welcomed = true;
      console.log("EXT " + ws.extensions);
      ws.send(JSON.stringify({ v: 1, type: "publish", room: "r", data: { from: "node", pad: "n".repeat(3000) } }));
      console.log("READY");
    } else if (env.type === "message") console.log(JSON.stringify(env.data));
  }
});
ws.on("error", e => { console.error(e); process.exit(1) });
`, url)
		root, err := exec.Command("npm", "root", "-g").Output()
		if err == nil {
			cmd.Env = append(os.Environ(), "NODE_PATH="+strings.TrimSpace(string(root)))
		}
		return cmd
	},
}

// TestCompressionInterop: see interopClients.
func TestCompressionInterop(t *testing.T) {
	e := startEdge(t, nil)
	for name, client := range interopClients {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			user := strings.ReplaceAll(name, "-", "")
			cmd := client(e.url(q("user", user, "rooms", "r")))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := make(chan string, 16)
			go func() {
				sc := bufio.NewScanner(out)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			next := func(what string) string {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("%s exited before %s; stderr:\n%s", name, what, &stderr)
					}
					return l
				case <-ctx.Done():
					t.Fatalf("%s: no %s; stderr:\n%s", name, what, &stderr)
				}
				return ""
			}
			if ext := next("extensions"); !strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("%s negotiated %q, want permessage-deflate", name, ext)
			}
			if l := next("READY"); l != "READY" {
				t.Fatalf("%s: %q, want READY", name, l)
			}
			// Its own compressed publish comes back; then large messages
			// published by the edge's API side.
			if own := next("its own message"); !strings.Contains(own, `"from":"`+strings.Split(name, "-")[0]) || len(own) < 3000 {
				t.Fatalf("%s read back %.80q…", name, own)
			}
			for i := range 5 {
				want := fmt.Sprintf(`{"i":%d,"quotes":%s}`, i, quotesJSON(i))
				if status, replies := e.post(t, q("user", "backend", "rooms", "r"), fmt.Sprintf(`{"v":1,"type":"publish","room":"r","data":%s}`, want)); status != http.StatusOK || len(replies) != 1 || replies[0].Type != core.TypeAck {
					t.Fatalf("POST /send: %d %+v", status, replies)
				}
				if got := next(fmt.Sprint("message ", i)); !jsonEqual(got, want) {
					t.Fatalf("%s read message %d as %.80q…, want %.80q…", name, i, got, want)
				}
			}
		})
	}
}

// quotesJSON is ~2 KB of market data.
func quotesJSON(seq int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range 24 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sym":"SYM%02d","bid":%d.%02d,"ask":%d.%02d,"t":%d}`, i, 90+(seq*7+i*13)%40, (seq*31+i)%100, 91+(seq*7+i*13)%40, (seq*17+i*3)%100, time.Now().UnixMilli())
	}
	b.WriteByte(']')
	return b.String()
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
