package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPageFeed holds the decoding of the page's reports to what a Go
// subscriber would have recorded: messages in order, one signal per
// recovered:false or gap (the client's own repeat of an open's
// recovered:false is not a second one), a reconnect per
// "reconnecting", ready at the first open, trouble counted.
func TestPageFeed(t *testing.T) {
	msg := func(i int) string {
		return fmt.Sprintf(`{"k":"env","env":{"v":1,"type":"message","id":"i%d","room":"a","data":{"s":%d,"pad":"x"}}}`, i, i)
	}
	s := newSubscriber("b", "browser-sse", []string{"a"}, []string{"edge"})
	f := &pageFeed{s: s}
	batches := []string{
		`[{"k":"open"},` + msg(0) + `,` + msg(1) + `]`,
		// A gap envelope: the client emits "gap", then hands it to "*".
		`[{"k":"gap"},{"k":"env","env":{"v":1,"type":"gap","data":{"recovered":false}}},` + msg(2) + `]`,
		`[{"k":"reconnecting","code":1012,"reason":"service restart"}]`,
		// A resume that lost something: open recovered:false, and the
		// client's gap of its own right after it.
		`[{"k":"open","recovered":false},{"k":"gap"},` + msg(5) + `]`,
		`[{"k":"reconnecting","code":1006,"reason":"stream dropped"}]`,
		`[{"k":"open","recovered":true},` + msg(6) + `]`,
		// A long-poll answer with recovered:false: a gap on its own.
		`[{"k":"gap"},` + msg(8) + `]`,
		`not json`,
		`[{"k":"env","env":{"v":1,"type":"message","id":"bad","room":"a","data":"no sequence"}}]`,
		`[{"k":"closed","code":1000,"reason":"bye"},{"k":"error","reason":"page: import failed"},{"k":"what"}]`,
	}
	for i, b := range batches {
		if f.feed(b) {
			t.Fatalf("batch %d: stopped, want not", i)
		}
	}
	if !f.feed(`[` + msg(9) + `,{"k":"stopped"},` + msg(10) + `]`) {
		t.Fatal("the stopped report was not seen")
	}
	if !s.isReady() {
		t.Error("not ready after an open")
	}
	gots, sigs, rc, errs := s.snapshot()
	var seqs []int64
	for _, g := range gots {
		seqs = append(seqs, g.Seq)
	}
	if want := []int64{0, 1, 2, 5, 6, 8, 9}; !reflect.DeepEqual(seqs, want) {
		t.Errorf("received %v, want %v (in order, nothing after stopped)", seqs, want)
	}
	type sig struct {
		kind  string
		after int
	}
	var gotSigs []sig
	for _, n := range sigs {
		gotSigs = append(gotSigs, sig{n.Kind, n.After})
	}
	if want := []sig{{"gap", 2}, {"open", 3}, {"gap", 5}}; !reflect.DeepEqual(gotSigs, want) {
		t.Errorf("signals %v, want %v", gotSigs, want)
	}
	if len(rc) != 2 {
		t.Errorf("%d reconnects, want 2", len(rc))
	}
	for _, want := range []string{"close 1012 service restart", "close 1006 stream dropped", "undecodable page report",
		"message data", "the client closed for good: 1000 bye", "page: import failed", `unknown page report "what"`} {
		found := false
		for k := range errs {
			found = found || strings.Contains(k, want)
		}
		if !found {
			t.Errorf("no error counted containing %q; counted %v", want, errs)
		}
	}
}

// fakeClient stands in for the edge's /client.js: connect emits a fixed
// script of events, a hundred per task, and close emits what is left
// before "closed", so that everything is emitted by the time the page
// stops it, however fast the test goes. Messages go round the rooms,
// with ids that name the transport, so the test sees the options the
// page passed.
const fakeClient = `
export function connect(url, o) {
  const handlers = new Map();
  const emit = (type, arg) => { for (const fn of handlers.get(type) || []) fn(arg); };
  const msg = (i) => ({ v: 1, type: "message", id: o.transports.join("+") + "-" + o.user + "-" + i, room: o.rooms[i % o.rooms.length], data: { s: i } });
  const gap = { v: 1, type: "gap", data: { recovered: false } };
  const script = [["open", { state: "open" }]];
  for (let i = 0; i < 3000; i++) {
    if (i === 1000) script.push(["reconnecting", { code: 1012, reason: "service restart" }], ["open", { state: "open", recovered: false }], ["gap", { v: 1, type: "gap", data: { recovered: false } }]);
    if (i === 2000) script.push(["gap", gap], ["*", gap]);
    script.push(["*", msg(i)]);
  }
  let next = 0;
  const step = () => {
    for (const end = Math.min(script.length, next + 100); next < end; next++) emit(...script[next]);
    if (next < script.length) setTimeout(step, 0);
  };
  setTimeout(step, 0);
  return {
    on(type, fn) { if (!handlers.has(type)) handlers.set(type, []); handlers.get(type).push(fn); },
    close() { while (next < script.length) emit(...script[next++]); emit("closed", { code: 1000, reason: "closed by client" }); },
  };
}
`

// TestBrowserPage runs page.html in headless Chromium against a fake
// client: every event the client emits reaches the subscriber, in
// order, by the time subscribe returns, and the page passes the
// subscriber's user, rooms and transport to the client. The edge fails
// the page's first fetch of the client: the page reports it and tries
// again.
func TestBrowserPage(t *testing.T) {
	exe, err := findChromium()
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/client.js" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if fetches.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, fakeClient)
	}))
	defer edge.Close()
	b, err := startBrowser(exe, filepath.Join(t.TempDir(), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()

	s := newSubscriber("browser-sse-0", "browser-sse", []string{"r1", "r2"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.subscribe(ctx, s, strings.TrimPrefix(edge.URL, "http://"), "sse") }()
	select {
	case <-s.ready:
	case <-time.After(readyTimeout):
		t.Fatalf("not ready within %s: %s", readyTimeout, s.errSummary())
	}
	cancel() // at once: what is still in the page must be drained
	select {
	case <-done:
	case <-time.After(2 * drainTimeout):
		t.Fatal("subscribe did not return")
	}

	gots, sigs, rc, errs := s.snapshot()
	importFailed := 0
	for k, n := range errs {
		if strings.HasPrefix(k, "page: import, attempt 1: ") {
			importFailed += n
			delete(errs, k)
		}
	}
	if want := map[string]int{"close 1012 service restart": 1}; importFailed != 1 || !reflect.DeepEqual(errs, want) {
		t.Errorf("errors %v and %d failed imports, want %v (the reconnect's reason) and 1", errs, importFailed, want)
	}
	if len(gots) != 3000 {
		t.Fatalf("received %d messages, want 3000", len(gots))
	}
	for i, g := range gots {
		wantRoom := []string{"r1", "r2"}[i%2]
		if g.Seq != int64(i) || g.Room != wantRoom || g.ID != fmt.Sprintf("sse-browser-sse-0-%d", i) {
			t.Fatalf("message %d: %+v, want seq %d in %s with id sse-browser-sse-0-%d", i, g, i, wantRoom, i)
		}
	}
	if len(sigs) != 2 || sigs[0].Kind != "open" || sigs[0].After != 1000 || sigs[1].Kind != "gap" || sigs[1].After != 2000 {
		t.Errorf("signals %+v, want open after 1000 and gap after 2000", sigs)
	}
	if len(rc) != 1 {
		t.Errorf("%d reconnects, want 1", len(rc))
	}
}
