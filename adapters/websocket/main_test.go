package websocket

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// handler must outlive its session's writer, and nothing may outlive the
// app. fasthttp's process-wide date updater is started once and never
// stops, and its worker-pool cleaner notices Stop only after a 10s sleep;
// neither is a leak.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}
