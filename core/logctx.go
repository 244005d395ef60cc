package core

import (
	"context"
	"log/slog"
)

// Every log line written about a connection carries its id, user,
// transport and remote address. Lines written where the Session is at
// hand add them with s.logAttrs(); lines written deeper, with only a
// context (Node.Publish from a client's publish), find the session in the
// context: a session's context (and every handler context derived from
// it) carries the session, and the node's logger adds its attributes.

type sessionKey struct{}

// sessionFrom returns the session a context was derived from, if any.
func sessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// connHandler adds the attributes of the session carried by the record's
// context, unless the record already names a connection.
type connHandler struct{ slog.Handler }

func (h connHandler) Handle(ctx context.Context, r slog.Record) error {
	if s := sessionFrom(ctx); s != nil {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == "conn"
			return !named
		})
		if !named {
			r = r.Clone()
			r.Add(s.logAttrs()...)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h connHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return connHandler{h.Handler.WithAttrs(as)}
}

func (h connHandler) WithGroup(name string) slog.Handler {
	return connHandler{h.Handler.WithGroup(name)}
}
