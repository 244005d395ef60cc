package coretest

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// benign lists stack fragments of goroutines the runtime or the testing
// package may leave behind; they are not leaks of the code under test.
var benign = []string{
	"os/signal.signal_recv",
	"os/signal.loop",
	"testing.(*M).startAlarm",
	"testing.runFuzzTests",
	"testing.runFuzzing",
	"internal/fuzz.",
}

// LeakCheck waits up to timeout for every goroutine other than the
// caller's to exit and returns an error listing the stacks of those still
// running. Goroutines end asynchronously after a Close returns (a timer
// callback, a consumer loop), hence the grace period; it polls, as there is
// no signal for "no goroutines left". Stacks containing any of ignore are
// not leaks (for process-wide goroutines a library starts once and never
// stops, such as fasthttp's date updater).
func LeakCheck(timeout time.Duration, ignore ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		leaked := leakedGoroutines(ignore)
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("switchboard/coretest: %d goroutine(s) still running %s after the tests:\n\n%s",
				len(leaked), timeout, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// VerifyNone runs m, then fails the test binary if the tests left
// goroutines behind (see LeakCheck). Call it from TestMain:
//
//	func TestMain(m *testing.M) { coretest.VerifyNone(m) }
func VerifyNone(m *testing.M, ignore ...string) {
	code := m.Run()
	if code == 0 {
		if err := LeakCheck(5*time.Second, ignore...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines(ignore []string) []string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The first stack is the calling goroutine's.
	stacks := strings.Split(strings.TrimSpace(string(buf)), "\n\n")
	var leaked []string
next:
	for _, s := range stacks[1:] {
		for _, b := range append(benign, ignore...) {
			if strings.Contains(s, b) {
				continue next
			}
		}
		leaked = append(leaked, s)
	}
	return leaked
}
