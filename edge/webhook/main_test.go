package webhook

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a test leaves a goroutine behind:
// workers, retries and HTTP connections must all end with Close.
func TestMain(m *testing.M) { coretest.VerifyNone(m) }
