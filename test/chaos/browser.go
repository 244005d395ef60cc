package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser subscribers run the project's own client (/client.js, served
// by every edge) in headless Chromium: one Chromium per broker run, one
// tab in a browser context of its own per subscriber (its own
// connections, its own storage), each forced onto one transport. The
// page (page.html, served by the suite on loopback) reports to Go
// through a runtime binding, so nothing is polled.

//go:embed page.html
var pageHTML []byte

// browserTransports are the browser subscribers' transports, in the
// order they are handed out; a browser subscriber's transport name is
// "browser-" and one of them.
var browserTransports = []string{"websocket", "sse", "longpoll"}

// reportBinding is the function the page calls with a JSON array of
// events (see pageEvent).
const reportBinding = "chaosReport"

// drainTimeout bounds how long a page has to report its last events
// once asked to stop.
const drainTimeout = 30 * time.Second

// findChromium finds the Chromium to run, as test/browsertest does.
func findChromium() (string, error) {
	exe, err := exec.LookPath("chromium")
	if err != nil {
		return "", fmt.Errorf("chromium not found (install it: apt-get install -y chromium; .ci/run does), or run with --browsers 0: %w", err)
	}
	return exe, nil
}

// browser is one headless Chromium and the loopback server of its page.
// subscribe may be called from several goroutines; close once, after
// every subscribe has returned (or to cut them short).
type browser struct {
	ctx     context.Context // the browser's: tabs are its children
	cancel  func()
	dir     string // the profile, removed by close
	log     *os.File
	srv     *http.Server
	pageURL string
}

// startBrowser starts Chromium (headless, a fresh profile in a temporary
// directory, no sandbox when root, driven over a pipe, so no debugging
// port) and the page's server on 127.0.0.1. Chromium's output and
// chromedp's complaints go to logPath.
func startBrowser(exe, logPath string) (_ *browser, err error) {
	b := &browser{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.log, err = os.Create(logPath); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp("", "switchboard-chaos-chromium-"); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.pageURL = "http://" + ln.Addr().String() + "/"
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(pageHTML)
	})}
	go func() { _ = b.srv.Serve(ln) }()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(b.dir),
		chromedp.CombinedOutput(b.log),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		// Tabs in the background keep their timers (the client's
		// backoff and pings) at full rate.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	logf := func(format string, a ...any) { fmt.Fprintf(b.log, "chromedp: "+format+"\n", a...) }
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b.ctx, b.cancel = bctx, func() { bcancel(); acancel() }
	// Start it now, so that a failure to launch is reported here.
	if err := chromedp.Do(bctx); err != nil {
		return nil, fmt.Errorf("start chromium: %w (its output: %s)", err, logPath)
	}
	return b, nil
}

// close stops Chromium and the page's server and removes the profile.
func (b *browser) close() {
	if b.cancel != nil {
		b.cancel() // waits for the process to exit
	}
	if b.srv != nil {
		_ = b.srv.Close()
	}
	if b.dir != "" {
		// Chromium's helpers may still be writing as it exits.
		for range 50 {
			if os.RemoveAll(b.dir) == nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // retrying a removal
		}
	}
	if b.log != nil {
		_ = b.log.Close()
	}
}

// subscribe runs subscriber s in a tab of its own: the client connects
// to edge (host:port) with s's user and rooms over transport only. It
// returns when ctx has ended and the page has reported everything it
// received until then (or drainTimeout has passed), with the tab closed.
// What goes wrong is counted in s's errors.
func (b *browser) subscribe(ctx context.Context, s *subscriber, edge, transport string) {
	tab, closeTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer closeTab()
	if err := chromedp.Do(tab); err != nil {
		s.failed(fmt.Errorf("open a tab: %w", err))
		return
	}
	// The page's reports, in order, from the moment the binding exists.
	feed := &pageFeed{s: s}
	calls := chromedp.Events(tab, runtime.BindingCalled)
	fed := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(fed)
		for ev, err := range calls {
			if err != nil {
				return
			}
			if ev.Name == reportBinding && feed.feed(ev.Payload) {
				return
			}
		}
	}()
	exceptions := chromedp.Events(tab, runtime.ExceptionThrown)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			s.failed(fmt.Errorf("page exception: %s", exceptionText(ev.ExceptionDetails)))
		}
	}()

	q := url.Values{"edge": {"http://" + edge}, "user": {s.user}, "rooms": {strings.Join(s.rooms, ",")}, "transport": {transport}}
	nctx, cancel := context.WithTimeout(tab, readyTimeout)
	err := chromedp.Do(nctx,
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, runtime.AddBinding, runtime.AddBindingParams{Name: reportBinding})
			return err
		}),
		chromedp.Navigate(b.pageURL+"?"+q.Encode()))
	cancel()
	if err != nil {
		s.failed(fmt.Errorf("load the page: %w", err))
		return
	}

	<-ctx.Done()
	dctx, cancel := context.WithTimeout(tab, drainTimeout)
	defer cancel()
	if _, err := chromedp.Run(dctx, chromedp.Evaluate[chromedp.Void]("window.chaosStop()")); err != nil {
		s.failed(fmt.Errorf("stop the page: %w", err))
		return
	}
	select {
	case <-fed:
	case <-dctx.Done():
		s.failed(fmt.Errorf("the page did not report its last events within %s", drainTimeout))
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// pageEvent is one report of the page: K says what it is.
type pageEvent struct {
	// K is "env" (an envelope the client handed the page: Env),
	// "open" (Recovered as the client gave it, nil when it gave none),
	// "gap", "reconnecting" (Code, Reason), "closed" (the client gave up:
	// Code, Reason), "error" (the page's own trouble: Reason), or
	// "stopped" (the last report).
	K         string          `json:"k"`
	Env       json.RawMessage `json:"env"`
	Recovered *bool           `json:"recovered"`
	Code      int             `json:"code"`
	Reason    string          `json:"reason"`
}

// pageFeed applies the page's reports to its subscriber, in the order
// the page made them. One goroutine feeds it.
type pageFeed struct {
	s *subscriber
	// echo: the last event was an open with recovered:false, after
	// which the client emits a "gap" of its own; that gap is the same
	// signal, not another.
	echo bool
}

// feed applies one call's batch (a JSON array of pageEvent); it reports
// whether the page has said "stopped". Anything it cannot apply is
// counted in the subscriber's errors.
func (f *pageFeed) feed(payload string) (stopped bool) {
	var batch []pageEvent
	if err := json.Unmarshal([]byte(payload), &batch); err != nil {
		f.s.failed(fmt.Errorf("undecodable page report %.200q: %w", payload, err))
		return false
	}
	for _, ev := range batch {
		echo := f.echo
		f.echo = false
		switch ev.K {
		case "env":
			var head struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(ev.Env, &head); err != nil {
				f.s.failed(fmt.Errorf("undecodable envelope %.200q: %w", ev.Env, err))
				continue
			}
			// The client emits "gap" for a gap envelope before it
			// hands it to "*": recorded already.
			if head.Type == "gap" {
				continue
			}
			if err := f.s.handle(ev.Env); err != nil {
				f.s.failed(err)
			}
		case "open":
			if ev.Recovered != nil && !*ev.Recovered {
				f.s.signal("open")
				f.echo = true
			}
			f.s.markReady()
		case "gap":
			if !echo {
				f.s.signal("gap")
			}
		case "reconnecting":
			f.s.reconnected(fmt.Errorf("close %d %s", ev.Code, ev.Reason))
		case "closed":
			f.s.failed(fmt.Errorf("the client closed for good: %d %s", ev.Code, ev.Reason))
		case "error":
			f.s.failed(errors.New(ev.Reason))
		case "stopped":
			return true
		default:
			f.s.failed(fmt.Errorf("unknown page report %q", ev.K))
		}
	}
	return false
}
