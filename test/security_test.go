package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// TestOriginPolicyEveryTransport: with a production configuration (JWT,
// no --allowed-origins) a page on another site cannot use a visitor's
// credentials on any transport (cross-site WebSocket hijacking): a forged
// Origin gets 403 on the upgrade, /sse, /poll and /send; the same site
// and non-browser clients (no Origin) are judged by their token.
func TestOriginPolicyEveryTransport(t *testing.T) {
	const secret = "origin-test-secret-0123456789"
	e := startEdge(t, func(c *config.Config) {
		c.Auth.Secret = []byte(secret)
		c.AllowedOrigins = []string{"self"} // what config.Load derives for JWT mode
	})
	tok := token(t, secret, "vic", time.Now().Add(time.Hour))
	self := "http://" + e.addr

	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"http://" + e.addr + ".evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{self, http.StatusSwitchingProtocols},
		{"", http.StatusSwitchingProtocols},
	} {
		opts := []dialOpt{}
		if tc.origin != "" {
			opts = append(opts, withHeader("Origin", tc.origin))
		}
		c, err := tryDial(t, e.url(q("token", tok)), opts...)
		if tc.want == http.StatusForbidden {
			if err == nil || !strings.Contains(err.Error(), "HTTP 403") {
				t.Errorf("upgrade from %q: %v, want HTTP 403", tc.origin, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("upgrade from %q: %v", tc.origin, err)
			continue
		}
		c.read().expect(core.TypeWelcome)
	}

	httpReq := func(method, path, origin string, body io.Reader) *http.Response {
		req, _ := http.NewRequest(method, "http://"+e.addr+path, body)
		req.Header.Set("Authorization", "Bearer "+tok)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, path := range []string{"/sse?rooms=r", "/poll?rooms=r&wait=0"} {
		if resp := httpReq(http.MethodGet, path, "https://evil.example", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s from a forged origin: %d, want 403", path, resp.StatusCode)
		}
	}
	publish := `{"v":1,"type":"publish","room":"r","data":"x"}`
	if resp := httpReq(http.MethodPost, "/send?rooms=r", "https://evil.example", strings.NewReader(publish)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /send from a forged origin: %d, want 403", resp.StatusCode)
	}
	if resp := httpReq(http.MethodPost, "/send?rooms=r", self, strings.NewReader(publish)); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /send from the same site: %d, want 200", resp.StatusCode)
	}
	if resp := httpReq(http.MethodGet, "/poll?rooms=r&wait=0", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /poll without Origin: %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), `"origin refused"`) {
		t.Error("refused origins are not logged")
	}
}

// TestCORSForAllowedOrigin: a page on an allowed origin gets CORS headers
// and preflight answers on the HTTP transports.
func TestCORSForAllowedOrigin(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example"} })
	req, _ := http.NewRequest(http.MethodOptions, "http://"+e.addr+"/send", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+e.addr+"/poll?user=u&rooms=r&wait=0", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("poll: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestConnectionCaps: beyond --max-connections-per-ip a WebSocket is
// closed with 1013 and a poll answers 503; the client IP comes from
// --proxy-header only when the peer is a trusted proxy.
func TestConnectionCaps(t *testing.T) {
	e := startEdge(t, func(c *config.Config) {
		c.Node.MaxConnectionsPerIP = 2
		c.ProxyHeader, c.TrustedProxies = "X-Forwarded-For", []string{"127.0.0.1"}
	})
	from := func(ip string) dialOpt { return withHeader("X-Forwarded-For", ip) }
	for range 2 {
		connect(t, e.url(q("user", "u")), from("203.0.113.7"))
	}
	c := dial(t, e.url(q("user", "u")), from("203.0.113.7")).read()
	if code := c.closed(); code != 1013 {
		t.Fatalf("third connection from one IP: close %d, want 1013", code)
	}
	// Another client IP behind the same proxy is unaffected.
	connect(t, e.url(q("user", "u")), from("203.0.113.8"))

	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/poll?user=u&wait=0", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "too many connections") {
		t.Fatalf("poll over the cap: %d %s", resp.StatusCode, body)
	}
	if got := e.stats(t).Refused; got != 2 {
		t.Fatalf("stats refused = %d, want 2", got)
	}
}

// TestConnectionCapIgnoresUntrustedProxyHeader: a client cannot dodge the
// per-IP cap by forging X-Forwarded-For when no proxy is trusted.
func TestConnectionCapIgnoresUntrustedProxyHeader(t *testing.T) {
	e := startEdge(t, func(c *config.Config) { c.Node.MaxConnectionsPerIP = 1 })
	connect(t, e.url(q("user", "u")), withHeader("X-Forwarded-For", "198.51.100.1"))
	c := dial(t, e.url(q("user", "u")), withHeader("X-Forwarded-For", "198.51.100.2")).read()
	if code := c.closed(); code != 1013 {
		t.Fatalf("forged X-Forwarded-For: close %d, want 1013", code)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchboard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: with --tls-cert/--tls-key the edge serves HTTPS and WSS, and
// plain HTTP on the same port fails.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg, err := config.Load([]string{"--tls-cert", certFile, "--tls-key", keyFile}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, func(c *config.Config) { c.TLS = cfg.TLS })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + e.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https healthz: %d", resp.StatusCode)
	}
	hc.CloseIdleConnections()
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: waitFor}
	conn, _, err := d.Dial("wss://"+e.addr+"/ws?user=t", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, m, err := conn.ReadMessage(); err != nil || !strings.Contains(string(m), `"welcome"`) {
		t.Fatalf("wss welcome: %s %v", m, err)
	}
	if resp, err := http.Get("http://" + e.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

// TestMetricsAndStatsNeedAdminTokenInProduction: with JWT configured, /stats and
// /metrics on the public listener need the admin token (Bearer, or the
// password of Basic authentication), and are not served there at all
// without one; the health probes stay open. With --admin-addr they are
// served on that listener, open, as in development mode, where the public
// listener serves them to anyone.
func TestMetricsAndStatsNeedAdminTokenInProduction(t *testing.T) {
	const secret = "0123456789abcdef-test-secret"
	const token = "0123456789abcdef-admin-token"
	get := func(u, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s: 401 without a Basic challenge", u)
		}
		return resp.StatusCode
	}
	cases := []struct {
		name string
		mod  func(*config.Config)
		// Status of /stats and /metrics by Authorization header.
		none, wrong, bearer, basic int
	}{
		{"development", nil, 200, 200, 200, 200},
		{"development with an admin token stays open", func(c *config.Config) { c.AdminToken = token }, 200, 200, 200, 200},
		{"production with an admin token", func(c *config.Config) { c.Auth.Secret, c.AdminToken = []byte(secret), token }, 401, 401, 200, 200},
		{"production without an admin token", func(c *config.Config) { c.Auth.Secret = []byte(secret) }, 404, 404, 404, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEdge(t, tc.mod)
			for _, p := range []string{"/stats", "/metrics"} {
				u := "http://" + e.addr + p
				for _, c := range []struct {
					auth string
					want int
				}{{"", tc.none}, {"Bearer wrong-token-0123456789", tc.wrong}, {"Bearer " + token, tc.bearer}, {basic("prometheus", token), tc.basic}} {
					if got := get(u, c.auth); got != c.want {
						t.Errorf("%s with %q: %d, want %d", p, c.auth, got, c.want)
					}
				}
			}
			for _, p := range []string{"/healthz", "/readyz"} {
				if got := get("http://"+e.addr+p, ""); got != 200 {
					t.Errorf("%s: %d, want 200 without a token", p, got)
				}
			}
			if tc.none == 404 && len(e.logs.lines("/stats and /metrics not served on the public listener: production mode; set --admin-addr (a private listener) or --admin-token")) != 1 {
				t.Errorf("no log line says why /stats and /metrics are off; logs:\n%s", e.logs)
			}
		})
	}
	t.Run("production with --admin-addr", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		t.Cleanup(func() {
			if err := <-done; err != nil {
				t.Errorf("admin: %v", err)
			}
		})
		e := startEdge(t, func(c *config.Config) {
			c.Auth.Secret, c.AdminToken, c.AdminAddr = []byte(secret), token, ln.Addr().String()
		})
		go func() { done <- e.srv.ServeAdmin(ln) }()
		for _, p := range []string{"/stats", "/metrics"} {
			if got := get("http://"+e.addr+p, "Bearer "+token); got != 404 {
				t.Errorf("public %s: %d, want 404", p, got)
			}
			if got := get("http://"+ln.Addr().String()+p, ""); got != 200 {
				t.Errorf("admin %s: %d, want 200", p, got)
			}
		}
	})
}
