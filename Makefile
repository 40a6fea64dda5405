# pgguard — the two commands a new machine needs:
#   make demo   set up, build and start a three-node cluster on this machine
#   make test   set up, build and run every test (what CI runs)

GO      ?= go
BIN     := bin/pgguard
DEMO    ?= /tmp/pgguard-demo
export PATH := $(PATH):/usr/local/go/bin

# Packages whose code is pure (no servers): run under the race detector.
PURE := ./internal/ha/... ./internal/config/... ./internal/status/... ./internal/repo/...

.PHONY: all setup build demo demo-down test lint unit integration bench chaos clean

all: build

setup:
	@scripts/setup.sh

build:
	$(GO) build -o $(BIN) ./cmd/pgguard

demo: setup build
	$(BIN) demo up --dir $(DEMO)

demo-down:
	$(BIN) demo down --dir $(DEMO)

test: setup lint unit integration

lint:
	@unformatted=$$(gofmt -l cmd internal bench); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 $(PURE)

# Servers are real (PostgreSQL, etcd, S3): one package at a time, so that a
# 2-core machine does not starve the clusters under test.
integration:
	$(GO) test -p 1 -count=1 -timeout 25m ./...

bench:
	$(GO) test ./bench/failover -run '^$$' -bench . -benchtime 1x -trials 5 -timeout 60m

chaos:
	@echo "make chaos: the network-namespace chaos suite is not built yet (issue 6)"; exit 1

clean:
	rm -rf bin
