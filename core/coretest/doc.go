// Package coretest holds test helpers for core and for authors of
// adapters and brokers: a recording [Transport] that implements
// core.Transport and core.Pinger, and [LeakCheck], the goroutine-leak check
// each package's TestMain runs after its tests.
//
// Concurrency contract: a Transport is driven by core from one writer
// goroutine at a time (it records a violation otherwise) and may be
// inspected from any goroutine while that happens. Next and WaitClosed
// block on signals, never on sleeps, so tests built on them are
// deterministic and work inside a testing/synctest bubble (create the
// Transport inside the bubble).
//
// coretest imports only core and the standard library.
package coretest
