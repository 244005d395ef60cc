# Switchboard — make targets. `make run` and `make test` are the two
# commands a new user needs (see README).
GO ?= go
PKGS := ./...

.PHONY: run build test vet unit e2e bench bench-brokers fuzz idlecost clean

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

## bench: benchmarks, 6 runs each (feed to benchstat)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./core/...

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
