package webclient

import (
	"compress/gzip"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// TestBuildsRunInNode loads both builds in Node: the module must export
// the API and the classic script must define globalThis.Switchboard with
// the same names. Node is part of the machine image (CI installs nothing
// for it); the test fails, not skips, without it.
func TestBuildsRunInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: the client builds are checked with Node: %v", err)
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "client.mjs")
	cls := filepath.Join(dir, "client.global.js")
	if err := os.WriteFile(mod, Module(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cls, Classic(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
const m = await import(process.argv[1]);
const vm = await import("node:vm");
const fs = await import("node:fs");
const ctx = vm.createContext({ URL, setTimeout, clearTimeout, setInterval, clearInterval });
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
const g = ctx.Switchboard;
const names = (o) => Object.keys(o).sort().join(",");
if (names(m) !== "Client,SwitchboardError,connect") throw new Error("module exports " + names(m));
if (!g || names(g) !== "Client,SwitchboardError,connect") throw new Error("classic global " + (g && names(g)));
// A client that never connects: options are validated, state is idle.
const c = new m.Client("http://127.0.0.1:1/base", { autoConnect: false, rooms: ["a"] });
if (c.state !== "idle" || c.rooms.join() !== "a") throw new Error("state " + c.state);
let threw = "";
try { new m.Client("/", { transports: ["carrier-pigeon"] }); } catch (e) { threw = e.message; }
if (!threw.includes("carrier-pigeon")) throw new Error("bad transport accepted");
try { await c.join("no spaces"); throw new Error("bad room accepted"); } catch (e) { if (e.code !== "invalid_room") throw e; }
c.close();
if (c.state !== "closed") throw new Error("after close: " + c.state);
console.log("ok");
`
	cmd := exec.Command(node, "--input-type=module", "-e", script, mod, cls)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("node: %v\n%s", err, out)
	}
}

func TestBuildClassicRejectsExtraExports(t *testing.T) {
	for _, src := range []string{
		"const a = 1;\n",
		"export const a = 1;\n" + exportLine,
		exportLine + "const b = 2;\n",
	} {
		if _, err := buildClassic([]byte(src)); err == nil {
			t.Errorf("buildClassic(%q): no error", src)
		}
	}
}

func TestRegisterServesWithETag(t *testing.T) {
	app := fiber.New()
	Register(app)
	for _, tc := range []struct {
		path, ctype string
		body        []byte
	}{
		{PathModule, "text/javascript; charset=utf-8", Module()},
		{PathClassic, "text/javascript; charset=utf-8", Classic()},
		{PathTypes, "application/typescript; charset=utf-8", Types()},
	} {
		res, err := app.Test(httptest.NewRequest("GET", tc.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != tc.ctype || string(body) != string(tc.body) {
			t.Fatalf("%s: %d %q, %d bytes", tc.path, res.StatusCode, res.Header.Get("Content-Type"), len(body))
		}
		if res.Header.Get("Access-Control-Allow-Origin") != "*" || res.Header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s: headers %v", tc.path, res.Header)
		}
		zreq := httptest.NewRequest("GET", tc.path, nil)
		zreq.Header.Set("Accept-Encoding", "gzip, br")
		zres, err := app.Test(zreq)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(zres.Body)
		if err != nil || zres.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s gzip: %v %v", tc.path, err, zres.Header)
		}
		unz, _ := io.ReadAll(zr)
		if string(unz) != string(tc.body) {
			t.Fatalf("%s: gzip body differs", tc.path)
		}
		req := httptest.NewRequest("GET", tc.path, nil)
		req.Header.Set("If-None-Match", res.Header.Get("ETag"))
		res2, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if res2.StatusCode != 304 {
			t.Fatalf("%s with If-None-Match: %d, want 304", tc.path, res2.StatusCode)
		}
	}
}

// TestTypesCheck compiles a program using the API against client.d.ts
// with tsc --strict, and checks that misuse is rejected, so the
// declarations neither fail to parse nor accept anything. .ci/run
// installs TypeScript (npm install -g typescript@7) when tsc is missing.
func TestTypesCheck(t *testing.T) {
	tsc, err := exec.LookPath("tsc")
	if err != nil {
		t.Fatalf("tsc not found (npm install -g typescript@7; .ci/run does it): %v", err)
	}
	check := func(file string) (string, error) {
		dir := t.TempDir()
		src, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string][]byte{
			"client.d.ts": Types(),
			file:          src,
			"tsconfig.json": []byte(`{"compilerOptions":{"strict":true,"noEmit":true,"target":"es2020",` +
				`"module":"nodenext","moduleResolution":"nodenext","lib":["es2020","dom"]},"files":["` + file + `"]}`),
		} {
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(tsc, "-p", dir).CombinedOutput()
		return string(out), err
	}
	if out, err := check("use.ts"); err != nil {
		t.Fatalf("tsc on use.ts: %v\n%s", err, out)
	}
	out, err := check("misuse.ts")
	if err == nil || !strings.Contains(out, "carrier-pigeon") || !strings.Contains(out, "misuse.ts(3") {
		t.Fatalf("tsc accepted misuse.ts or missed an error: %v\n%s", err, out)
	}
}
