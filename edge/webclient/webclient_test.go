package webclient

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
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
// Data that is not JSON fails the request at once, whatever the token
// form, in both the promise and the callback form (with a token function
// it once left both unsettled: the error was taken for the token's).
const cyclic = {}; cyclic.self = cyclic;
for (const token of ["t", () => "t", (done) => done(null, "t")]) {
  const k = new m.Client("http://127.0.0.1:1/", { autoConnect: false, token });
  try { await k.publish("a", cyclic); throw new Error("cyclic data published"); } catch (e) { if (e.code !== "bad_request") throw e; }
  const code = await new Promise((resolve) => k.publish("a", cyclic, (e) => resolve(e && e.code)));
  if (code !== "bad_request") throw new Error("callback form: " + code);
  k.close();
}
// Every form of token function is used, whatever it declares: a
// getToken(force) returning a promise or a string is not taken for the
// callback form (it once was, and never connected); the callback form
// returns nothing; the first answer wins; failures are code "token".
const http = await import("node:http");
const auths = [];
const srv = http.createServer((req, res) => {
  auths.push(req.headers.authorization || "");
  req.resume();
  req.on("end", () => { res.setHeader("Content-Type", "application/json"); res.end('{"v":1,"type":"ack","data":{"id":"1"}}'); });
});
await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
const base = "http://127.0.0.1:" + srv.address().port + "/";
const forms = {
  "string": "t",
  "() => string": () => "t",
  "() => promise": () => Promise.resolve("t"),
  "async () => string": async () => "t",
  "(force) => promise": (force) => Promise.resolve("t"),
  "function getToken(force) string": function getToken(force) { return "t"; },
  "(done) => done, sync": (done) => { done(null, "t"); },
  "(done) => done, later": (done) => { setTimeout(() => done(null, "t"), 1); },
  "(done) => done, then a string": (done) => { done(null, "t"); return "not this"; },
  "(done) => a promise, then done": (done) => { setTimeout(() => done(null, "not this"), 1); return Promise.resolve("t"); },
};
for (const name of Object.keys(forms)) {
  const k = new m.Client(base, { autoConnect: false, token: forms[name] });
  const before = auths.length;
  try { await k.publish("a", 1); } catch (e) { throw new Error(name + ": " + e.code + " " + e.message); }
  if (auths.length !== before + 1 || auths[before] !== "Bearer t") throw new Error(name + ": sent " + JSON.stringify(auths.slice(before)));
  k.close();
}
const failing = {
  "(force) => rejected promise": (force) => Promise.reject(new Error("no")),
  "(done) => done(error)": (done) => { done(new Error("no")); },
  "() => throws": () => { throw new Error("no"); },
};
for (const name of Object.keys(failing)) {
  const k = new m.Client(base, { autoConnect: false, token: failing[name] });
  const before = auths.length;
  try { await k.publish("a", 1); throw new Error(name + ": published"); } catch (e) { if (e.code !== "token") throw new Error(name + ": " + e.code + " " + e.message); }
  if (auths.length !== before) throw new Error(name + ": sent a request");
  k.close();
}
srv.close();
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
		{PathLegacy, "text/javascript; charset=utf-8", Legacy()},
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
		gz, _ := io.ReadAll(zres.Body)
		t.Logf("%s: %d bytes, %d gzipped", tc.path, len(tc.body), len(gz))
		zr, err := gzip.NewReader(bytes.NewReader(gz))
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

// buildTools returns node and the directory of the pinned build tools
// (_build: TypeScript 5.9 and acorn), failing the test, not skipping it,
// when either is missing.
func buildTools(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: the client is built and checked with Node: %v", err)
	}
	dir, err = filepath.Abs("_build")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"typescript", "acorn"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("the pinned %s is not installed in %s (run make client-tools; .ci/run does it): %v", pkg, dir, err)
		}
	}
	return node, dir
}

// TestGeneratedUpToDate compiles client.ts again, into a temporary
// directory, and fails when the committed client.js, client.d.ts or
// client.legacy.js differ from what it compiles to: edit client.ts and
// run make client, never the generated files.
func TestGeneratedUpToDate(t *testing.T) {
	node, dir := buildTools(t)
	out := t.TempDir()
	if b, err := exec.Command(node, filepath.Join(dir, "build.mjs"), out).CombinedOutput(); err != nil {
		t.Fatalf("build.mjs: %v\n%s", err, b)
	}
	for name, committed := range map[string][]byte{"client.js": Module(), "client.d.ts": Types(), "client.legacy.js": Legacy()} {
		built, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, committed) {
			t.Errorf("%s is stale: it differs from what client.ts compiles to (%d bytes, committed %d); run make client", name, len(built), len(committed))
		}
	}
}

// TestBuildRefusesMultilineTemplates runs build.mjs on a source with a
// template literal spanning lines: re-indenting the output line by line
// would change its text, so the build must fail and say why.
func TestBuildRefusesMultilineTemplates(t *testing.T) {
	node, dir := buildTools(t)
	tmp := t.TempDir()
	build := filepath.Join(tmp, "_build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "build.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	src := "function connect(): string {\n    return `one\n    two`;\n}\nclass Client {}\nclass SwitchboardError {}\n" + exportLine
	for name, body := range map[string]string{filepath.Join(build, "build.mjs"): string(script), filepath.Join(tmp, "client.ts"): src} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(build, "node_modules")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, filepath.Join(build, "build.mjs"), filepath.Join(tmp, "out")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "template literals spanning lines") {
		t.Fatalf("build.mjs accepted a template literal spanning lines: %v\n%s", err, out)
	}
}

// legacyBudget is the most /client.legacy.js may weigh, gzipped as the
// edge serves it.
const legacyBudget = 10 * 1024

// TestLegacyServedES5 fetches /client.legacy.js as a browser does
// (gzipped) and parses it with acorn as an ES5 script: any later syntax
// fails. It also holds the gzipped size to the budget.
func TestLegacyServedES5(t *testing.T) {
	node, dir := buildTools(t)
	app := fiber.New()
	Register(app)
	req := httptest.NewRequest("GET", PathLegacy, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET %s: %d %v", PathLegacy, res.StatusCode, res.Header)
	}
	t.Logf("%s: %d bytes, %d gzipped (budget %d)", PathLegacy, len(Legacy()), len(gz), legacyBudget)
	if len(gz) > legacyBudget {
		t.Errorf("%s is %d bytes gzipped, over the %d-byte budget", PathLegacy, len(gz), legacyBudget)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	src, _ := io.ReadAll(zr)
	file := filepath.Join(t.TempDir(), "client.legacy.js")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
const acorn = require(process.argv[1]);
const fs = require("fs");
// ES5 has no function declarations in blocks (strict ES5 engines refuse
// them; acorn lets them through): any outside a function body fails too.
const nested = (ast) => {
  let n = 0;
  const walk = (node, parent) => {
    if (!node || typeof node.type !== "string") return;
    if (node.type === "FunctionDeclaration" && parent.type !== "Program" && !(parent.type === "BlockStatement" && parent.fnBody)) n++;
    if (node.body && node.body.type === "BlockStatement" && /Function/.test(node.type)) node.body.fnBody = true;
    for (const k of Object.keys(node)) {
      const v = node[k];
      if (Array.isArray(v)) v.forEach((c) => walk(c, node));
      else if (v && typeof v === "object") walk(v, node);
    }
  };
  walk(ast, ast);
  return n;
};
const check = (f, v) => {
  try {
    const n = nested(acorn.parse(fs.readFileSync(f, "utf8"), { ecmaVersion: v, sourceType: "script" }));
    return n ? n + " function declarations in blocks" : "ok";
  } catch (e) { return e.message; }
};
console.log(JSON.stringify({ legacy: check(process.argv[2], 5), modern: check(process.argv[3], 5) }));
`
	modern := filepath.Join(t.TempDir(), "client.global.js")
	if err := os.WriteFile(modern, Classic(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "-e", script, filepath.Join(dir, "node_modules", "acorn"), file, modern).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct{ Legacy, Modern string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node said %s", out)
	}
	if got.Legacy != "ok" {
		t.Errorf("%s is not ES5: %s", PathLegacy, got.Legacy)
	}
	// The check can fail: the modern classic build is not ES5.
	if got.Modern == "ok" {
		t.Errorf("acorn with ecmaVersion 5 accepted %s, which is ES2020: the check proves nothing", PathClassic)
	}
}

// TestLegacyRunsWithoutES2015 runs the legacy build in a Node vm context
// stripped of ES2015+ globals and methods (testdata/strip-es2015.js:
// Promise, Map, Set, Symbol, Object.assign, Array.from, ...) and uses the
// API that needs no network: options are validated, requests take
// Node-style callbacks (called asynchronously), errors are
// SwitchboardErrors, close fails what is pending.
func TestLegacyRunsWithoutES2015(t *testing.T) {
	node, _ := buildTools(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "client.legacy.js")
	if err := os.WriteFile(file, Legacy(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
const vm = await import("node:vm");
const fs = await import("node:fs");
const ctx = vm.createContext({ setTimeout, clearTimeout, setInterval, clearInterval });
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), ctx);
vm.runInContext("if (typeof Promise !== 'undefined' || typeof Map !== 'undefined' || Object.assign || [].includes) throw new Error('not stripped')", ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
const out = await new Promise((resolve) => { ctx.done = resolve; vm.runInContext(` + "`" + `
var S = Switchboard, out = {};
var c = S.connect("https://push.example.com/base", { autoConnect: false, rooms: ["a"] });
out.state = c.state; out.rooms = c.rooms.join();
try { new S.Client("/", { transports: ["carrier-pigeon"] }); out.badTransport = "accepted"; } catch (e) { out.badTransport = e instanceof TypeError; }
out.returned = String(c.join("no spaces", function (err, ack) {
  out.joinErr = err.code; out.isSwitchboardError = err instanceof S.SwitchboardError && err instanceof Error; out.ack = ack;
  c.publish("a", 1, function (err) {
    out.publishErr = err.code; out.asyncCallback = out.sync === false;
    c.close();
    out.closed = c.state;
    c.publish("a", 1, function (err) { out.afterClose = err.code; done(out); });
  });
}));
out.noPromise = c.publish("a", 1) === undefined;
out.sync = false;
` + "`" + `, ctx); });
console.log(JSON.stringify(out));
`
	cmd := exec.Command(node, "--input-type=module", "-e", script, filepath.Join("testdata", "strip-es2015.js"), file)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("node said %s", b)
	}
	want := map[string]any{
		"state": "idle", "rooms": "a", "badTransport": true, "returned": "undefined",
		"joinErr": "invalid_room", "isSwitchboardError": true, "ack": nil,
		"publishErr": "network", "asyncCallback": true, "noPromise": true,
		"closed": "closed", "afterClose": "closed",
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v (all: %s)", k, got[k], w, b)
		}
	}
}
