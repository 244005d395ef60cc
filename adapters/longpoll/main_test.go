package longpoll_test

import (
	"log/slog"
	"testing"

	sbredis "github.com/switchboard-dev/switchboard/broker/redis"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind: a poll's
// session must be done before its handler answers, and nothing may
// outlive the app. fasthttp's date updater and worker-pool cleaner are
// process-wide, not leaks. go-redis's dial failures during the outage
// tests are expected: not on stderr.
func TestMain(m *testing.M) {
	sbredis.SetClientLogger(slog.New(slog.DiscardHandler))
	coretest.VerifyNone(m, "fasthttp.updateServerDate", "fasthttp.(*workerPool).Start.func2")
}
