package sse

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// stream callback must outlive its session's writer. fasthttp's date
// updater and worker-pool cleaner are process-wide, not leaks.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}
