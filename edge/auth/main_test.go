package auth

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind: a key
// refresh loop that outlives Close is a leak in production too.
func TestMain(m *testing.M) { coretest.VerifyNone(m) }
