package request

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
)

// HTTP is r as a Request.
func HTTP(r *http.Request) Request { return &httpRequest{r: r} }

type httpRequest struct {
	r     *http.Request
	query url.Values // parsed on first use
}

var _ Request = (*httpRequest)(nil)

func (r *httpRequest) Method() string           { return r.r.Method }
func (r *httpRequest) Host() string             { return r.r.Host }
func (r *httpRequest) Query(key string) string  { return r.values().Get(key) }
func (r *httpRequest) Header(key string) string { return r.r.Header.Get(key) }
func (r *httpRequest) RemoteAddr() string       { return r.r.RemoteAddr }
func (r *httpRequest) Done() <-chan struct{}    { return r.r.Context().Done() }

// Context is the request's, without its cancellation (Fiber's user
// context is never canceled either): a publish the client stopped
// waiting for still completes.
func (r *httpRequest) Context() context.Context { return context.WithoutCancel(r.r.Context()) }

// ClientIP is the host part of RemoteAddr.
func (r *httpRequest) ClientIP() string {
	if host, _, err := net.SplitHostPort(r.r.RemoteAddr); err == nil {
		return host
	}
	return r.r.RemoteAddr
}

func (r *httpRequest) Body(limit int) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r.r.Body, int64(limit)+1))
}

func (r *httpRequest) values() url.Values {
	if r.query == nil {
		r.query = r.r.URL.Query()
	}
	return r.query
}

func (r *httpRequest) VisitQuery(fn func(key, value string)) {
	for k, vs := range r.values() {
		for _, v := range vs {
			fn(k, v)
		}
	}
}

// VisitHeaders visits Host first (net/http keeps it out of Header;
// fasthttp lists it), then the headers.
func (r *httpRequest) VisitHeaders(fn func(key, value string)) {
	if r.r.Host != "" {
		fn("Host", r.r.Host)
	}
	for k, vs := range r.r.Header {
		for _, v := range vs {
			fn(k, v)
		}
	}
}

// Write writes a on w.
func Write(w http.ResponseWriter, a *Answer) {
	h := w.Header()
	for k, v := range a.Header {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}
