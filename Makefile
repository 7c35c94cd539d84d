# Everything runs against PostgreSQL on 127.0.0.1:5432 and RabbitMQ on 127.0.0.1:5672.
GO ?= go
export GOFLAGS ?=

.PHONY: run build test test-faults fuzz bench-relay bench-ws bench-e2e lint

## run: migrate and start api + dispatcher + realtime + web page on :8080
run:
	$(GO) run ./cmd/social all

build:
	$(GO) build -o bin/social ./cmd/social

## test: every test (real PostgreSQL, RabbitMQ and Chromium), race detector on, fuzz seeds included
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 9m ./...

## test-faults: outage and cluster tests that start private RabbitMQ nodes and PostgreSQL servers
test-faults:
	$(GO) test -race -count=1 -timeout 9m -tags faults ./faults/...

## fuzz: explore beyond the committed seeds (FUZZTIME per target)
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzDecodeBody -fuzztime $(FUZZTIME)
	$(GO) test ./adapters/http -run '^$$' -fuzz FuzzParsePage -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz FuzzValidatePostText -fuzztime $(FUZZTIME)
	$(GO) test ./domain -run '^$$' -fuzz FuzzRegistrationValidate -fuzztime $(FUZZTIME)

bench-relay:
	$(GO) run ./cmd/socialbench relay

bench-ws:
	$(GO) run ./cmd/socialbench ws

## bench-e2e: the whole system under open-loop load, against baselines (docs/performance.md); E2E_FLAGS to change
E2E_FLAGS ?= --find-max --out bench-results/e2e
bench-e2e:
	$(GO) run ./cmd/socialbench e2e $(E2E_FLAGS)
