package request

import (
	"context"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// Fiber is c as a Request. Its strings point into fasthttp's buffers,
// reused once the handler returns.
func Fiber(c *fiber.Ctx) Request { return fiberRequest{c} }

type fiberRequest struct{ c *fiber.Ctx }

var _ Request = fiberRequest{}

func (r fiberRequest) Method() string           { return r.c.Method() }
func (r fiberRequest) Host() string             { return utils.UnsafeString(r.c.Request().Host()) }
func (r fiberRequest) Query(key string) string  { return r.c.Query(key) }
func (r fiberRequest) Header(key string) string { return r.c.Get(key) }
func (r fiberRequest) ClientIP() string         { return r.c.IP() }
func (r fiberRequest) RemoteAddr() string       { return r.c.Context().RemoteAddr().String() }
func (r fiberRequest) Context() context.Context { return r.c.UserContext() }
func (r fiberRequest) Done() <-chan struct{}    { return r.c.Context().Done() }

// Body is the body fasthttp read (its size bounded by the app's
// BodyLimit).
func (r fiberRequest) Body(int) ([]byte, error) { return r.c.Body(), nil }

func (r fiberRequest) VisitQuery(fn func(key, value string)) {
	r.c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		fn(utils.UnsafeString(k), utils.UnsafeString(v))
	})
}

func (r fiberRequest) VisitHeaders(fn func(key, value string)) {
	r.c.Request().Header.VisitAll(func(k, v []byte) {
		fn(utils.UnsafeString(k), utils.UnsafeString(v))
	})
}

// Reply writes a on c.
func Reply(c *fiber.Ctx, a *Answer) error {
	for k, v := range a.Header {
		c.Set(k, v)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(a.Status).Send(a.Body)
}
