// Package browsertest starts headless Chromium for tests (the Debian
// package chromium, driven through chromedp; no chromedriver) and waits
// on and evaluates JavaScript in its page. Shared by the end-to-end
// browser tests (test/) and the examples' tests.
//
// Each browser has a fresh profile in the test's temp dir and the flags
// that keep it off the network (this machine has none) and keep its
// timers running at full rate; it is killed when the test ends. A
// browser's context is for one test goroutine.
package browsertest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start launches headless Chromium and returns the context to drive it
// with. It fails the test if Chromium is missing (.ci/run installs it)
// or does not start.
func Start(t testing.TB) context.Context {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (.ci/run installs the Debian package): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// Start the browser now, so a failure to launch is reported here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Poll waits until the JavaScript expression is truthy on the page, for
// at most timeout (a bound on a hang).
func Poll(ctx context.Context, expr string, timeout time.Duration) error {
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	return err
}

// Eval returns the value of a JavaScript expression on the page, decoded
// from JSON into T; it fails the test on an error.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// PollEval waits until the JavaScript expression is truthy on the page,
// for at most timeout, like Poll, but evaluating it from Go every 20 ms:
// Poll runs on the page's Promise, which a page imitating an old browser
// may have deleted. The expression must not throw.
func PollEval(ctx context.Context, expr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("%s: still false after %v", expr, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
