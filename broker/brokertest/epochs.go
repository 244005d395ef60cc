package brokertest

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// CheckRecreated checks what a driver's test of a lost or recreated log
// (a new epoch) observed: the node's reader delivered exactly one gap (its
// live sessions are told), and ordered the old log's id before the new
// log's, as it was in both. gaps is the number of Delivery.Gap the test's
// recorder saw.
func CheckRecreated(t testing.TB, b core.Broker, oldID, newID string, gaps int) {
	t.Helper()
	if gaps != 1 {
		t.Errorf("%d gap deliveries after the log was recreated, want 1 (live sessions are told)", gaps)
	}
	if after, ok := b.After(newID, oldID); !ok || !after {
		t.Errorf("After(new log's id, old log's) = %v, %v; want true, true", after, ok)
	}
	if after, ok := b.After(oldID, newID); !ok || after {
		t.Errorf("After(old log's id, new log's) = %v, %v; want false, true", after, ok)
	}
}
