# Switchboard — make targets. `make run` and `make test` are the two
# commands a new user needs (see README).
GO ?= go
PKGS := ./...

.PHONY: run build test vet lint unit e2e chaos bench bench-core bench-tools bench-brokers fuzz idlecost client client-tools clean

## run: the edge on :8080 with the in-memory broker (development mode)
run:
	$(GO) run ./edge

## build: the switchboard binary in ./bin
build:
	$(GO) build -o bin/switchboard ./edge

## test: vet, then every test with the race detector (client-tools
## first: a test rebuilds the browser client and compares)
test: vet client-tools
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

vet:
	$(GO) vet $(PKGS)

## lint: staticcheck (pinned here) on both modules, zero findings, and
## go.mod/go.sum of both modules as go mod tidy would leave them
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) $(PKGS)
	$(GO) -C test/load run $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	$(GO) -C test/load mod tidy -diff

unit:
	$(GO) test -race -count=1 ./core/... ./broker/... ./adapters/... ./edge/...

e2e:
	$(GO) test -race -count=1 ./test/...

## chaos: the fault-injection suite (test/chaos, docs/reliability.md): a
## real redis-server (AOF), nats-server (JetStream files) and PostgreSQL
## (pgtest), three edges, WebSocket, SSE and long-poll subscribers that
## resume on another edge, keyed publishers that retry on another edge,
## and edge SIGKILL/SIGTERM, broker restart (Postgres: a crash, then a
## fast shutdown) and SIGSTOP, a network partition and stalled readers
## meanwhile; everything checked against the broker's log. Redis, NATS
## and Postgres, 10,000 messages per broker (what CI runs, about 3
## minutes); FULL=1: 100,000. Kafka (kfake, whose restart loses its log):
## go run ./test/chaos --brokers kafka. Report in CHAOS_OUT.
CHAOS_OUT ?= test/artifacts/chaos
chaos:
	ulimit -n 20000 && $(GO) run ./test/chaos --out $(CHAOS_OUT) \
		$(if $(filter-out 0,$(FULL)),--messages 100000 --duration 100s)

## bench: the standard load matrix of issue #7 (test/load/matrix): builds the
## edge, the load tool and the peers, runs every entry (medians of 3 runs;
## about 21 minutes, bounded at 25) and rewrites the bench block of
## docs/performance.md. BENCH_QUICK=1: the reduced form (a few minutes), which
## only prints the block. JSON lines and HTML reports go to BENCH_OUT. The
## load tool is a module of its own (test/load/go.mod): go -C runs it there,
## hence the absolute paths.
BENCH_OUT ?= test/artifacts/bench
bench:
	ulimit -n 20000 && $(GO) -C test/load run ./matrix --out $(abspath $(BENCH_OUT)) \
		$(if $(filter-out 0,$(BENCH_QUICK)),--quick,--doc $(abspath docs/performance.md))

## bench-core: core Go benchmarks, 6 runs each (feed to benchstat)
bench-core:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./core/...

## bench-tools: vet and unit-test the load tool's module (test/load: the
## load tool, the matrix, idlecost; no load is run) and vet its peer
## servers (test/load/peers), nested modules that ./... does not reach
bench-tools:
	$(GO) -C test/load vet ./...
	$(GO) -C test/load test -race -count=1 -timeout 10m ./...
	$(GO) -C test/load/peers/fiber vet ./...
	$(GO) -C test/load/peers/centrifuge vet ./...

## bench-brokers: publish -> deliver latency and throughput per broker (docs/brokers.md)
bench-brokers:
	$(GO) test -run '^$$' -bench PublishDeliver -benchtime 2s -count 3 ./broker/...

## fuzz: fuzz every target in the module for FUZZTIME each (default 10s,
## what CI runs; e.g. make fuzz FUZZTIME=5m for a long run on demand)
FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz

## idlecost: what 10,000 idle WebSocket connections cost the server
idlecost: build
	$(GO) -C test/load run ./idlecost --server-bin $(abspath bin/switchboard) --conns 10000

## client: the browser client's generated files (edge/webclient: client.js,
## client.d.ts, client.legacy.js) compiled again from client.ts with the
## pinned TypeScript; commit them with client.ts (a test fails when they
## are stale)
client: client-tools
	node edge/webclient/_build/build.mjs edge/webclient

## client-tools: the pinned TypeScript 5.9 (ES5 output) and acorn in
## edge/webclient/_build/node_modules, installed only when missing or
## not at their pinned versions
client-tools:
	edge/webclient/_build/install.sh

clean:
	rm -rf bin
