package postgres_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core/coretest"
)

// TestMain fails the package if a broker leaves its reader, trimmer or
// pgx goroutines behind after Close.
func TestMain(m *testing.M) {
	coretest.VerifyNone(m)
}
