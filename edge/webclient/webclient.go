package webclient

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed client.js
var module []byte

//go:embed client.d.ts
var types []byte

//go:embed client.legacy.js
var legacy []byte

// exportLine is the module's only export statement; the classic build
// replaces it with a global.
const exportLine = "export { connect, Client, SwitchboardError };\n"

// Module returns the ES module source.
func Module() []byte { return module }

// Types returns the TypeScript declarations.
func Types() []byte { return types }

// Legacy returns the ES5 classic-script build (window.Switchboard), for
// engines without ES2015, Promise, fetch, WebSocket or EventSource.
func Legacy() []byte { return legacy }

// Classic returns the classic-script build: the module wrapped in a
// function that assigns window.Switchboard = {connect, Client,
// SwitchboardError} instead of exporting.
func Classic() []byte { return classic }

var classic = mustClassic(module)

func mustClassic(src []byte) []byte {
	b, err := buildClassic(src)
	if err != nil {
		panic("switchboard/edge/webclient: " + err.Error())
	}
	return b
}

func buildClassic(src []byte) ([]byte, error) {
	if n := bytes.Count(src, []byte("export ")); n != 1 || !bytes.HasSuffix(src, []byte(exportLine)) {
		return nil, fmt.Errorf("client.js must end with %q and export nothing else (found %d export statements)", exportLine, n)
	}
	body := src[:len(src)-len(exportLine)]
	var b bytes.Buffer
	b.WriteString("(function (global) {\n\"use strict\";\n")
	b.Write(body)
	b.WriteString("global.Switchboard = { connect, Client, SwitchboardError };\n})(typeof globalThis !== \"undefined\" ? globalThis : window);\n")
	return b.Bytes(), nil
}

// Paths are the routes Register serves.
const (
	PathModule  = "/client.js"
	PathClassic = "/client.global.js"
	PathTypes   = "/client.d.ts"
	PathLegacy  = "/client.legacy.js"
)

// Register serves the client on app. The files are public and may be
// loaded cross-origin (module scripts are fetched with CORS), so they
// carry Access-Control-Allow-Origin: *. Browsers revalidate with the
// ETag on every load (Cache-Control: no-cache), so an edge upgrade
// reaches them at once.
func Register(app *fiber.App) {
	app.Get(PathModule, asset(module, "text/javascript; charset=utf-8"))
	app.Get(PathClassic, asset(classic, "text/javascript; charset=utf-8"))
	app.Get(PathTypes, asset(types, "application/typescript; charset=utf-8"))
	app.Get(PathLegacy, asset(legacy, "text/javascript; charset=utf-8"))
}

// asset serves body, gzipped (compressed once, here) when the client
// accepts it.
func asset(body []byte, contentType string) fiber.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderETag, etag)
		c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
		if c.Get(fiber.HeaderIfNoneMatch) == etag {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, contentType)
		if strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") {
			c.Set(fiber.HeaderContentEncoding, "gzip")
			return c.Send(gz.Bytes())
		}
		return c.Send(body)
	}
}
