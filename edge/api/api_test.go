package api

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
)

// TestEveryRouteDocumented: the routes Register mounts are exactly
// Routes(), and docs/api.yaml documents each with its method.
func TestEveryRouteDocumented(t *testing.T) {
	b, err := memory.New(memory.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	node, err := core.NewNode(core.Config{}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Shutdown(t.Context()) })
	app := fiber.New()
	Register(app, Config{Node: node, Keys: []string{"0123456789abcdef"}})
	param := regexp.MustCompile(`:([a-z]+)`)
	var mounted []string
	for _, r := range app.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, Prefix+"/") || r.Method == fiber.MethodHead || r.Method == "USE" {
			continue
		}
		mounted = append(mounted, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	want := Routes()
	slices.Sort(mounted)
	mounted = slices.Compact(mounted)
	slices.Sort(want)
	if strings.Join(mounted, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mounted routes\n%s\nRoutes()\n%s", strings.Join(mounted, "\n"), strings.Join(want, "\n"))
	}

	// docs/api.yaml: "  <path>:" then "    <method>:" before the next path.
	f, err := os.Open("../../docs/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]bool{}
	path := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "  /"); ok && strings.HasSuffix(p, ":") {
			path = "/" + strings.TrimSuffix(p, ":")
			continue
		}
		if !strings.HasPrefix(line, "  ") {
			path = ""
			continue
		}
		for _, m := range []string{"get", "post", "put", "patch", "delete"} {
			if path != "" && line == "    "+m+":" {
				documented[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	for _, r := range want {
		if !documented[r] {
			t.Errorf("docs/api.yaml does not document %s", r)
		}
	}
	for r := range documented {
		if !slices.Contains(want, r) {
			t.Errorf("docs/api.yaml documents %s, which the API does not serve", r)
		}
	}
}
