package websocket

// For the external tests (adaptertest_test.go): the same front ends.
var (
	Fronts     = fronts
	ServeFront = serveFront
)
