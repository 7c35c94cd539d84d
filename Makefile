# PostgreSQL on 127.0.0.1:5432. `make run` uses the machine's RabbitMQ on 127.0.0.1:5672; the
# tests run against RabbitMQ 4: a private node "social-test" (127.0.0.1:5673, or the first free port after it) started by
# scripts/rabbitmq4 (as root; the node's root is made once with debootstrap), unless you give
# TEST_AMQP_URL yourself. `make test-floor` runs the relay and realtime tests against the 5672 node
# (Debian 12's RabbitMQ 3.10, the oldest we support). Every target first runs scripts/services,
# as .ci/run does: it installs (apt) and starts what is missing, or, when not root, stops at once
# with the command that does.
GO ?= go
export GOFLAGS ?=

# TEST_RABBITMQ_PORT: the tests' node's port; auto (default) keeps its last one if free, else takes
# the first free one from 5673 (scripts/rabbitmq4 says which).
TEST_RABBITMQ_PORT ?= auto
ifeq ($(origin TEST_AMQP_URL),undefined)
TEST_BROKER := scripts/rabbitmq4 start social-test $(TEST_RABBITMQ_PORT)
TEST_URL = $$(scripts/rabbitmq4 url social-test)
TEST_SERVICES := postgres chromium debootstrap cgo nginx
else
TEST_BROKER := @echo "tests use TEST_AMQP_URL=$(TEST_AMQP_URL)"
TEST_URL = $(TEST_AMQP_URL)
TEST_SERVICES := postgres chromium cgo nginx
endif
FLOOR_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: run build test test-bench test-broker test-faults test-floor fuzz bench-go bench-relay bench-ws bench-e2e bench-fanout bench-broker lint

## run: migrate and start api + dispatcher + realtime + web page on :8080 (or, when another program
## holds it, the first free port after it; HTTP_ADDR chooses); Ctrl-C stops it
# The binary runs itself, not under `go run`, which exits 1 after an interrupt (make then reports
# an error for a clean shutdown).
run: build
	@scripts/services postgres rabbitmq
	bin/social all

build:
	$(GO) build -o bin/social ./cmd/social

## lint: gofmt, go vet, staticcheck (pinned, fetched by go run) and go.mod/go.sum tidy
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff

## test: every test (real PostgreSQL, RabbitMQ 4 and Chromium), race detector on, fuzz seeds included; the benchmark harness's are test-bench
test: test-broker
	$(GO) vet ./...
	TEST_AMQP_URL=$(TEST_URL) $(GO) test -race -count=1 -timeout 9m $$($(GO) list ./... | grep -v /cmd/socialbench)

## test-bench: cmd/socialbench's tests, each subcommand once in a tiny configuration against the real system
test-bench: test-broker
	TEST_AMQP_URL=$(TEST_URL) $(GO) test -race -count=1 -timeout 9m ./cmd/socialbench/...

# test-broker: PostgreSQL, Chromium and the RabbitMQ 4 node of the tests (idempotent: an already
# running node is kept)
test-broker:
	@scripts/services $(TEST_SERVICES)
	$(TEST_BROKER)

## test-faults: outage and cluster tests that start private RabbitMQ 4 nodes and PostgreSQL servers
test-faults: test-broker
	TEST_AMQP_URL=$(TEST_URL) $(GO) test -race -count=1 -timeout 9m -tags faults ./faults/...

## test-floor: the relay and realtime tests against the machine's RabbitMQ 3.10 (FLOOR_AMQP_URL)
test-floor:
	@scripts/services postgres rabbitmq cgo
	TEST_AMQP_URL=$(FLOOR_AMQP_URL) $(GO) test -race -count=1 -timeout 9m ./outbox/... ./adapters/amqp/... ./adapters/websocket/...
	TEST_AMQP_URL=$(FLOOR_AMQP_URL) $(GO) test -race -count=1 -timeout 5m ./cmd/social \
		-run '^(TestSeedScenarioTwoRealtimeInstances|TestRealtime|TestAllServesTheWebsocket|TestDialog|TestDispatcherSendsOneMessagePerInstance|TestHandOverRace)'
	TEST_AMQP_URL=$(FLOOR_AMQP_URL) $(GO) test -count=1 -timeout 5m ./cmd/socialbench -run '^TestE2ESmoke$$'

## fuzz: explore beyond the committed seeds (FUZZTIME per target)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzDecodeBody -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzParsePage -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz FuzzValidatePostText -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz FuzzRegistrationValidate -fuzztime $(FUZZTIME)

## bench-go: the Go micro-benchmarks of the hot paths (hub delivery, a socket's connect and close, token verification, recipients decoding, frame and feed page encoding)
bench-go:
	$(GO) test -run '^$$' -bench 'HubDeliver|HubConnect|TokensVerify|EachDelivery|EncodeFramePage|WriteFeed' -count 5 ./adapters/websocket ./adapters/auth ./domain ./adapters/http

## bench-relay, bench-ws, bench-e2e: benchmarks against the tests' RabbitMQ 4 node (TEST_AMQP_URL)
bench-relay: test-broker
	$(GO) run ./cmd/socialbench relay --amqp-url $(TEST_URL)

bench-ws: test-broker
	$(GO) run ./cmd/socialbench ws --amqp-url $(TEST_URL)

## bench-e2e: the whole system under open-loop load, against the post transaction's SQL (docs/performance.md); E2E_FLAGS to change
E2E_FLAGS ?= --find-max --out bench-results/e2e
bench-e2e: test-broker
	$(GO) run ./cmd/socialbench e2e --amqp-url $(TEST_URL) $(E2E_FLAGS)

## bench-fanout: one author's posts to 1,000 sockets; FANOUT_FLAGS="--centrifugo /path/to/centrifugo" adds Centrifugo beside ours
FANOUT_FLAGS ?=
bench-fanout: test-broker
	$(GO) run ./cmd/socialbench fanout --amqp-url $(TEST_URL) $(FANOUT_FLAGS)

## bench-broker: RabbitMQ's own CPU per post, one message per instance vs the CC message (raw amqp091-go)
bench-broker: test-broker
	$(GO) run ./cmd/socialbench broker --amqp-url $(TEST_URL)
