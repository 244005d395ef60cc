package longpoll_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind: a poll's
// session must be done before its handler answers, and nothing may
// outlive the app. fasthttp's date updater and worker-pool cleaner are
// process-wide, not leaks.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}
