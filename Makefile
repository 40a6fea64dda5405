# pgguard — the two commands a new machine needs:
#   make demo   set up, build and start a three-node cluster on this machine
#   make test   set up, build and run every test (what CI runs)

GO      ?= go
BIN     := bin/pgguard
DEMO    ?= /tmp/pgguard-demo
export PATH := $(PATH):/usr/local/go/bin

# Packages whose code is pure (no servers): run under the race detector.
PURE := ./internal/ha/... ./internal/config/... ./internal/status/... ./internal/repo/...

.PHONY: all setup build demo demo-down test lint unit integration bench chaos chaos-report chaos-clean chaos-reset clean

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

# The chaos suite (issue 6): a cluster of network namespaces, faults, a
# lost-write checker; it rewrites docs/RELIABILITY.md. Root only. Narrow it
# with FAULTS=host-kill,link-flap MODES=sync; results accumulate in
# chaos/results.jsonl (committed, so trials add up across machines and runs;
# give each run its own SEED) until chaos-reset.
TRIALS    ?= 20
SEED      ?= 1
FAULTS    ?= all
MODES     ?= async,sync
CHAOS_DIR ?= /tmp/pgguard-chaos
CHAOS_RESULTS ?= $(CURDIR)/chaos/results.jsonl

chaos: setup
	@command -v iptables >/dev/null || apt-get install -y iptables iproute2 iputils-ping
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaos$$' -count=1 -v -timeout 0 \
		-trials $(TRIALS) -seed $(SEED) -faults $(FAULTS) -modes $(MODES) \
		-workdir $(CHAOS_DIR) -results $(CHAOS_RESULTS) -report $(CURDIR)/docs/RELIABILITY.md

# chaos-report rewrites docs/RELIABILITY.md from the results gathered so far.
chaos-report:
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaosReport$$' -count=1 -v \
		-workdir $(CHAOS_DIR) -results $(CHAOS_RESULTS) -report $(CURDIR)/docs/RELIABILITY.md

# chaos-clean removes what an interrupted run may have left: the agents and
# postmasters it recorded (killed by their recorded PIDs), namespaces named
# pgc-*, and the unreachable route of 10.200.0.0/24. chaos-reset also drops
# the records.
chaos-clean: build
	-@for d in $(CHAOS_DIR)/*/; do [ -f $$d/demo.json ] && for n in n1 n2 n3; do $(BIN) demo kill $$n --dir $$d >/dev/null 2>&1; done; done; true
	-@for ns in $$(ip netns list | awk '/^pgc-/ {print $$1}'); do ip netns del $$ns; done
	-@ip route del unreachable 10.200.0.0/24 2>/dev/null || true

chaos-reset: chaos-clean
	rm -rf $(CHAOS_DIR) $(CHAOS_RESULTS)

clean:
	rm -rf bin
