package test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreImportsOnlyStdlib enforces the dependency rule: core depends on
// the standard library alone (no Fiber, no Watermill, nothing of ours
// outside core).
func TestCoreImportsOnlyStdlib(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/switchboard-dev/switchboard/core").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(pkg, "/")
		if !strings.Contains(first, ".") {
			continue // standard library
		}
		if pkg == "github.com/switchboard-dev/switchboard/core" || strings.HasPrefix(pkg, "github.com/switchboard-dev/switchboard/core/internal/") {
			continue
		}
		t.Errorf("core depends on %s", pkg)
	}
}
