package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocSnippets: every Go snippet in docs/embedding.md is this
// example's code (main.go, or fiber_test.go for the Fiber way), line for
// line up to spacing, so the page shows code that compiles and that
// the tests run.
func TestDocSnippets(t *testing.T) {
	doc, err := os.ReadFile("../../docs/embedding.md")
	if err != nil {
		t.Fatal(err)
	}
	var src []string
	for _, f := range []string{"main.go", "fiber_test.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, lines(string(b))...)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(snippets) < 5 {
		t.Fatalf("%d Go snippets in docs/embedding.md, want at least 5", len(snippets))
	}
	for _, m := range snippets {
		if want := lines(m[1]); !contains(src, want) {
			t.Errorf("docs/embedding.md shows code that is not the example's:\n%s", m[1])
		}
	}
}

// lines splits s into its non-blank lines, each with its runs of spaces
// and tabs made one space (indentation and gofmt's comment alignment do
// not matter).
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// contains reports whether want occurs in src as consecutive lines.
func contains(src, want []string) bool {
	for i := 0; i+len(want) <= len(src); i++ {
		if slices.Equal(src[i:i+len(want)], want) {
			return true
		}
	}
	return false
}
