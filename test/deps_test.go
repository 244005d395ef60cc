package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
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

// loadOnlyModules are the modules only the load tool uses (progress bars
// and what they pull in). They belong to test/load's own module: a
// program that imports Switchboard must not get them.
var loadOnlyModules = []string{
	"github.com/schollz/progressbar/v3",
	"github.com/mitchellh/colorstring",
}

// TestLoadToolIsItsOwnModule holds the load tool, its commands and its
// peers outside the root module: no root package lives under test/load
// or test/cmd, and the root go.mod requires none of their modules.
func TestLoadToolIsItsOwnModule(t *testing.T) {
	out, err := exec.Command("go", "list", "github.com/switchboard-dev/switchboard/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, tool := range []string{"/test/load", "/test/cmd"} {
			p := "github.com/switchboard-dev/switchboard" + tool
			if pkg == p || strings.HasPrefix(pkg, p+"/") {
				t.Errorf("the root module holds %s: the load tool is a module of its own (test/load/go.mod)", pkg)
			}
		}
	}
	out, err = exec.Command("go", "mod", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var mod struct{ Require []struct{ Path string } }
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	for _, r := range mod.Require {
		if slices.Contains(loadOnlyModules, r.Path) {
			t.Errorf("the root go.mod requires %s, which only the load tool uses", r.Path)
		}
	}
}

// repoFiles lists the files git tracks, relative to the repository root
// (returned too).
func repoFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	root = strings.TrimSpace(string(out))
	out, err = exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for f := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		files = append(files, f)
	}
	return root, files
}

// TestNoCompiledBinariesTracked keeps build outputs out of the repository:
// no tracked file starts like an ELF, Mach-O or PE executable.
func TestNoCompiledBinariesTracked(t *testing.T) {
	root, files := repoFiles(t)
	magics := [][]byte{
		[]byte("\x7fELF"),
		{0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, // Mach-O
		{0xce, 0xfa, 0xed, 0xfe}, {0xcf, 0xfa, 0xed, 0xfe},
		[]byte("MZ"), // PE
	}
	for _, f := range files {
		head := make([]byte, 4)
		fh, err := os.Open(filepath.Join(root, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree, not yet committed
		}
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.ReadFull(fh, head)
		fh.Close()
		for _, m := range magics {
			if bytes.HasPrefix(head[:n], m) {
				t.Errorf("%s is a compiled executable: remove it from git (git rm --cached) and ignore it in .gitignore", f)
				break
			}
		}
	}
}

// TestExampleBuildOutputsIgnored makes sure `go build` of any example
// writes a file git ignores: for each main package under examples/, its
// directory's name (and .exe) in that directory (`go build` there) and in
// the root (`go build ./examples/<name>`).
func TestExampleBuildOutputsIgnored(t *testing.T) {
	root, _ := repoFiles(t)
	out, err := exec.Command("go", "list", "-f", `{{if eq .Name "main"}}{{.Dir}}{{end}}`, "github.com/switchboard-dev/switchboard/examples/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dirs := strings.Fields(string(out))
	if len(dirs) == 0 {
		t.Fatal("go list found no example commands")
	}
	for _, dir := range dirs {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(dir)
		for _, p := range []string{
			path.Join(filepath.ToSlash(rel), name), path.Join(filepath.ToSlash(rel), name+".exe"),
			name, name + ".exe",
		} {
			// --no-index: judge the path by .gitignore alone, tracked or not.
			if err := exec.Command("git", "-C", root, "check-ignore", "-q", "--no-index", p).Run(); err != nil {
				t.Errorf("%s (what go build writes for %s) is not ignored by .gitignore: %v", p, rel, err)
			}
		}
	}
}
