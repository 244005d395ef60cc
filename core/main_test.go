package core_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if any test leaves a goroutine behind: a
// session writer, a heartbeat timer callback or a broker consumer that
// outlives its Close or Shutdown is a leak in production too.
func TestMain(m *testing.M) { coretest.VerifyNone(m) }
