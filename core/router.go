package core

import (
	"context"
	"fmt"
	"sync"
)

// HandlerFunc handles one inbound envelope of a given type. Returning an
// *Error sends an error envelope with its code and the request's ref; any
// other error is logged and reported as CodeInternal. Handlers run on the
// session's reader goroutine, one envelope at a time per session.
type HandlerFunc func(ctx context.Context, s *Session, env *Envelope) error

// Middleware wraps every handler, built-in ones included (for logging,
// authorization, metrics).
type Middleware func(next HandlerFunc) HandlerFunc

// Router routes inbound envelopes by type. The built-in types (join,
// leave, publish, direct, ping) are pre-registered; integrators add their
// own types with Handle and wrap all of them with Use. Register everything
// before the node accepts connections.
type Router struct {
	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	mw       []Middleware
	chain    map[string]HandlerFunc // handlers wrapped in middleware
}

func newRouter() *Router {
	return &Router{handlers: make(map[string]HandlerFunc), chain: make(map[string]HandlerFunc)}
}

// reserved lists types a client may not send or an integrator may not take over.
var reserved = map[string]bool{
	TypeJoin: true, TypeLeave: true, TypePublish: true, TypeDirect: true, TypePing: true, TypeRefresh: true,
	TypeWelcome: true, TypeMessage: true, TypeAck: true, TypeError: true, TypePong: true, TypeGap: true,
	TypeBroadcast: true, typeControl: true,
}

// Handle registers h for envelopes of type typ. It panics if typ is a
// built-in type or malformed, as registration mistakes are programming
// errors.
func (r *Router) Handle(typ string, h HandlerFunc) {
	if err := ValidateType(typ); err != nil {
		panic(fmt.Sprintf("switchboard/core: Handle(%q): %v", typ, err))
	}
	if reserved[typ] {
		panic(fmt.Sprintf("switchboard/core: Handle(%q): built-in type", typ))
	}
	r.set(typ, h)
}

func (r *Router) set(typ string, h HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[typ] = h
	r.rebuild()
}

// Use appends middleware wrapping every handler, outermost first.
func (r *Router) Use(mw ...Middleware) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mw = append(r.mw, mw...)
	r.rebuild()
}

func (r *Router) rebuild() {
	for typ, h := range r.handlers {
		for i := len(r.mw) - 1; i >= 0; i-- {
			h = r.mw[i](h)
		}
		r.chain[typ] = h
	}
}

func (r *Router) lookup(typ string) HandlerFunc {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.chain[typ]
}

// Reserved reports whether typ is a built-in envelope type, which
// integrators may neither handle nor send as their own.
func Reserved(typ string) bool { return reserved[typ] }
