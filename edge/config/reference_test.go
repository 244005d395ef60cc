package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

// TestReference: docs/configuration.md is exactly what Reference
// generates, so every flag is documented with its current default and
// meaning. Run with -update after changing a flag.
func TestReference(t *testing.T) {
	const path = "../../docs/configuration.md"
	want := Reference()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/configuration.md is out of date: run go test ./edge/config -run TestReference -update")
	}
	// And every flag really is in it.
	var c Config
	newFlagSet(&c).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(string(got), "| `--"+f.Name+"` | `"+EnvName(f.Name)+"` |") {
			t.Errorf("--%s is not documented", f.Name)
		}
	})
}
