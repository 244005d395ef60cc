# Switchboard — make targets. `make run` and `make test` are the two
# commands a new user needs (see README).
GO ?= go
PKGS := ./...

.PHONY: run build test vet unit e2e bench bench-core bench-peers bench-brokers fuzz idlecost clean

## run: the edge on :8080 with the in-memory broker (development mode)
run:
	$(GO) run ./edge

## build: the switchboard binary in ./bin
build:
	$(GO) build -o bin/switchboard ./edge

## test: vet, then every test with the race detector
test: vet
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 ./core/... ./broker/... ./adapters/... ./edge/...

e2e:
	$(GO) test -race -count=1 ./test/...

## bench: the standard load matrix of issue #7 (test/load/matrix): builds the
## edge, the load tool and the peers, runs every entry (medians of 3 runs;
## about 21 minutes, bounded at 25) and rewrites the bench block of
## docs/performance.md. BENCH_QUICK=1: the reduced form (a few minutes), which
## only prints the block. JSON lines and HTML reports go to BENCH_OUT.
BENCH_OUT ?= test/artifacts/bench
bench:
	ulimit -n 20000 && $(GO) run ./test/load/matrix --out $(BENCH_OUT) \
		$(if $(filter-out 0,$(BENCH_QUICK)),--quick,--doc docs/performance.md)

## bench-core: core Go benchmarks, 6 runs each (feed to benchstat)
bench-core:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./core/...

## bench-peers: vet the load tool's peer servers (nested modules under
## test/load/peers, outside ./... and the main go.mod)
bench-peers:
	cd test/load/peers/fiber && $(GO) vet ./...
	cd test/load/peers/centrifuge && $(GO) vet ./...

## bench-brokers: publish -> deliver latency and throughput per broker (docs/brokers.md)
bench-brokers:
	$(GO) test -run '^$$' -bench PublishDeliver -benchtime 2s -count 3 ./broker/...

## fuzz: fuzz every target in the module, FUZZTIME each (default 100000 inputs)
fuzz:
	.ci/fuzz

## idlecost: what 10,000 idle WebSocket connections cost the server
idlecost: build
	$(GO) run ./test/cmd/idlecost --server-bin bin/switchboard --conns 10000

clean:
	rm -rf bin
