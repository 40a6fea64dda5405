# pgguard — the two commands a new machine needs:
#   make demo   set up, build and start a three-node cluster on this machine
#   make test   set up, build and run every test (what CI runs)

GO      ?= go
BIN     := bin/pgguard
DEMO    ?= /tmp/pgguard-demo
export PATH := $(PATH):/usr/local/go/bin

# Packages whose code is pure (no servers but in-process test receivers): run under the race detector.
PURE := ./internal/ha/... ./internal/procfs/... ./internal/config/... ./internal/status/... ./internal/repo/... ./internal/ops/... ./internal/lsn/... ./internal/jobs/... ./internal/explain/... ./internal/alerts/... ./internal/metrics/... ./internal/walstats/... ./internal/walspool/...
# The same packages as a pattern: integration-rest leaves them to unit-pure,
# which has run every test of theirs under the race detector.
PURE_RE := /internal/(ha|procfs|config|status|repo|ops|lsn|jobs|explain|alerts|metrics|walstats|walspool)(/|$$)

.PHONY: all setup build demo demo-down test lint unit unit-pure race-pools integration integration-agent integration-rest lane-agent lane-pools lane-rest bench bench-failover bench-patroni bench-patroni-load patroni-deps bench-idle bench-backup bench-rebuild bench-routing bench-ratelimit bench-walstream fuzz chaos chaos-routing chaos-routing-report chaos-ci chaos-report chaos-clean chaos-reset clean

all: build

setup:
	@scripts/setup.sh

build:
	$(GO) build -o $(BIN) ./cmd/pgguard
	$(GO) build -o $(dir $(BIN))pgguard-wal ./cmd/pgguard-wal

demo: setup build
	$(BIN) demo up --dir $(DEMO)

demo-down:
	$(BIN) demo down --dir $(DEMO)

# make test runs lint, then three lanes side by side, then the chaos
# subset alone (its timing is what it measures):
#   lane-agent  the agent's integration tests but three (below);
#   lane-pools  the pure packages, then the worker-pool packages, under
#               the race detector (CPU-bound), then one of the three;
#   lane-rest   cmd/pgguard's integration tests, then every other
#               package's, then two of the three.
# pgguard and pgguard-wal are built once for every lane (testcluster's
# PGGUARD_TEST_BIN_DIR). Every stage is CPU-bound on 2 cores, so what
# counts is the work done, then the tail where one lane runs alone. Clean
# clones with a warm build cache and process accounting (accton), 2026-12-06:
#   1,134 s, 1,725 CPU-s: the pure packages before the lanes (beside
#     nothing) and again without -race in lane-rest; 149 links (each package's
#     test binary, and pgguard with pgguard-wal again in each package that
#     starts a cluster); PostgreSQL 664 CPU-s, the pgguard processes 380;
#   1,056 s, 1,523 CPU-s: pgguard built once, the pure packages once and in
#     lane-pools (94 links); lane-agent last by 141 s;
#   973 s, 1,455 CPU-s: then three agent tests moved (lanes 695, 711, 672 s;
#     lint 13 s, chaos-ci 249 s).
# Each lane runs one package at a time, so at most three test processes
# share the machine; most of the agent's and cmd/pgguard's test time is
# waiting for a cluster to act, which leaves the CPU to the pools. Each
# lane's output is printed as each of its commands ends. Each stage's time
# is printed at the end (CI's log then says where the minutes went).
# The S3 gateway the storage tests run is built from source once per
# machine (about 200 s of both cores on a clean one): the build starts
# first, in the background, and the first test that needs it waits for it
# (a file lock) instead of building it in the middle of a lane.
test: setup
	@t0=$$(date +%s); s3log=/tmp/pgguard-s3gateway.$$$$.log; \
	$(GO) run ./tools/s3gateway > $$s3log 2>&1 & s3gw=$$!; \
	bindir=$$(mktemp -d /tmp/pgguard-testbin-XXXXXX) && chmod 755 $$bindir && \
	$(GO) build -o $$bindir ./cmd/pgguard ./cmd/pgguard-wal && export PGGUARD_TEST_BIN_DIR=$$bindir || exit 1; \
	rc=0; \
	{ $(MAKE) --no-print-directory lint && t1=$$(date +%s) && \
	  $(MAKE) --no-print-directory -j3 --output-sync=line lane-agent lane-pools lane-rest && t2=$$(date +%s) && \
	  $(MAKE) --no-print-directory chaos-ci && t3=$$(date +%s); } || rc=$$?; \
	if [ $$rc -ne 0 ]; then rm -rf $$bindir; echo "make test failed; the S3 gateway's build so far:"; cat $$s3log; exit $$rc; fi; \
	wait $$s3gw; cat $$s3log; rm -f $$s3log; rm -rf $$bindir; \
	echo "make test: lint $$((t1-t0)) s, the three lanes $$((t2-t1)) s, chaos-ci $$((t3-t2)) s; $$((t3-t0)) s in all"



lint:
	@unformatted=$$(gofmt -l cmd internal bench chaos tools); if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./tools/kindlit

# The agent's handlers, with fakes of the store and the instance.
AGENT_UNIT := '^(TestHandOverStopsWaitsAndLeavesTheDecisionToDecide|TestHandOverReleasesBeforeThePostmasterExits|TestAFailedReleaseLeavesNoStopPending|TestAStopWithoutItsShutdownCheckpointWithdrawsTheSwitchover|TestRewindOutcomes|TestFailedStandbyStartsAreCounted|TestFenceDropsTheLeaseBeforeItStopsPostgres|TestARenewalRefusedBecauseAnotherNodeLeadsDropsTheLease|TestClearingARequestComparesTheRevisionTheDecisionRead|TestAnUnknownStepIsAnError|TestJobCommandResultPipe|TestRecordNeverWaitsOnAlerts|TestAnUnreadableSecretFileStopsTheAgentNamingTheField|TestMetricsPageOfALeadingAgent|TestAFailedMemberRenewalRepublishesAtOnce|TestShutdownWithoutTheStoreReleasesWithinTheTTL|TestPublishedProblemsAreNotHiddenByALowDisk)$$'

# The packages with worker pools: every test of theirs, the integration
# tests too, under the race detector (the test process: the pools their
# tests drive in-process; the pgguard commands they start are built
# without it, which would double the time), one package at a time;
# integration does not run them a second time.
POOLS := ./internal/repocopy/... ./internal/restore/... ./internal/storage/... ./internal/backup/...
POOLS_RE := /internal/(repocopy|restore|storage|backup)(/|$$)

# The test commands run with -vet=off: lint's `go vet ./...` has checked
# every package and its tests with more analyzers than go test's own vet
# subset, which would only type-check everything once more.
unit: unit-pure race-pools

unit-pure:
	$(GO) test -race -vet=off -count=1 $(PURE)
	$(GO) test -race -vet=off -count=1 -run $(AGENT_UNIT) ./internal/agent

# But one: the memory test measures the peak RSS of the pgguard commands it
# starts, and fills a block index of 400,000 entries in the test process
# first (71 s under the race detector on a busy machine, 5 s without). It
# runs with integration-rest, without -race.
NO_RACE := '^TestBackupAndRestoreStayUnderAMemoryLimit$$'

race-pools:
	$(GO) test -race -vet=off -p 1 -count=1 -timeout 30m -skip $(NO_RACE) $(POOLS)

# Servers are real (PostgreSQL, etcd, S3): one package at a time within a
# lane, so that a 2-core machine does not starve the clusters under test.
ITEST := $(GO) test -vet=off -p 1 -count=1 -timeout 25m

integration: integration-agent integration-rest

integration-agent:
	$(ITEST) ./internal/agent ./cmd/pgguard

integration-rest:
	$(ITEST) $$($(GO) list ./... | grep -Ev '$(POOLS_RE)|$(PURE_RE)|/internal/agent$$|/cmd/pgguard$$')
	$(ITEST) -run $(NO_RACE) ./internal/backup

# Three of the agent's longest tests, which wait on delayed standbys and a
# point-in-time restore rather than use the CPU, run at the ends of the
# other lanes: with the pure packages in lane-pools and pgguard built once,
# lane-agent was the last by 140-155 s (789 s against 648 and 634 s, a
# warm build cache, 2026-12-06).
AGENT_TO_POOLS := TestRecoverDeletedRowsFromADelayedStandby
AGENT_TO_REST := TestRecoverADroppedTableFromADelayedStandby|TestRestoreClusterToAPointInTime

lane-agent:
	@t0=$$(date +%s); $(ITEST) -skip '^($(AGENT_TO_POOLS)|$(AGENT_TO_REST))$$' ./internal/agent && \
	echo "lane-agent: $$(($$(date +%s)-t0)) s"

lane-pools:
	@t0=$$(date +%s); $(MAKE) --no-print-directory unit-pure && t1=$$(date +%s) && \
	$(MAKE) --no-print-directory race-pools && t2=$$(date +%s) && \
	$(ITEST) -run '^($(AGENT_TO_POOLS))$$' ./internal/agent && \
	echo "lane-pools: unit-pure $$((t1-t0)) s, race-pools $$((t2-t1)) s, the agent's $$(($$(date +%s)-t2)) s"

lane-rest:
	@t0=$$(date +%s); $(ITEST) ./cmd/pgguard && t1=$$(date +%s) && \
	$(MAKE) --no-print-directory integration-rest && t2=$$(date +%s) && \
	$(ITEST) -run '^($(AGENT_TO_REST))$$' ./internal/agent && \
	echo "lane-rest: cmd/pgguard $$((t1-t0)) s, integration-rest $$((t2-t1)) s, the agent's $$(($$(date +%s)-t2)) s"

# The benchmarks (not run in CI). Each writes its tables into docs/ (see
# docs/BENCHMARKS.md for the index): failover figures, failover side by side
# with Patroni, backup and restore side by side with pg_basebackup and
# pgBackRest, standby rebuild and drill. About 65 minutes in all on the project machine (2026-12-06).
bench: bench-failover bench-patroni bench-patroni-load bench-idle bench-backup bench-rebuild bench-routing bench-ratelimit bench-walstream

# CPU of an idle cluster as shipped (three agents with their embedded etcd
# members) beside Patroni's (three nodes, three etcd members): 60 s after a
# 60 s settle each, from /proc/PID/stat (docs/BENCHMARKS.md).
bench-idle: patroni-deps
	$(GO) test ./bench/failover -run '^$$' -bench '^BenchmarkIdleCPU$$' -benchtime 1x -patroni -timeout 20m -v

# archive_command latency and tps with the agent's WAL stream, against
# archive_command = true, interleaved; appends a row to docs/BACKUP-BENCHMARKS.md.
bench-walstream: setup
	$(GO) test ./bench/walstream -run '^$$' -bench . -benchtime 1x -timeout 60m -args -report $(CURDIR)/docs/BACKUP-BENCHMARKS.md

# The transfer, read and write limits' precision: each within 10 % of its
# limit on a quiet machine (the tests only check none is exceeded).
bench-ratelimit: setup
	$(GO) test ./cmd/pgguard -run '^$$' -bench '^BenchmarkRateLimits$$' -benchtime 1x -timeout 10m

# Host-loss write gap through HAProxy, the built-in proxy and libpq's
# multi-host string, side by side; appends to docs/ROUTING.md.
bench-routing: setup
	$(GO) test ./bench/failover -run '^$$' -bench '^BenchmarkRouting$$' -benchtime 1x -trials 5 -timeout 60m -report $(CURDIR)/docs/ROUTING.md

# Failover figures on the cluster as shipped (WAL archiving, default jobs);
# the switchover also without archiving, labelled, which explains it.
bench-failover: setup
	$(GO) test ./bench/failover -run '^$$' -bench '^Benchmark(HostLoss|PostmasterCrash|Switchover|SwitchoverArchivingOff|StandbyLoss|SyncHostLoss|SyncHostLossOtherStandbyAhead)$$' -benchtime 1x -trials 5 -timeout 60m

# Backup, incremental, restore and WAL push at pgbench scale 100 (and a less
# compressible table) beside pg_basebackup and pgBackRest (Debian's
# pgbackrest); rewrites docs/BACKUP-BENCHMARKS.md.
bench-backup: setup
	@command -v pgbackrest >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y pgbackrest
	$(GO) test ./bench/backup -run '^$$' -bench . -benchtime 1x -timeout 90m \
		-scale 100 -load-seconds 60 -channels 2 -report $(CURDIR)/docs/BACKUP-BENCHMARKS.md

# Standby rebuild from a base backup vs from the newest backup, and a drill,
# at pgbench scale 100; appends a run to docs/REBUILD-AND-DRILL.md.
bench-rebuild: setup
	$(GO) test ./bench/rebuild -run '^$$' -bench . -benchtime 1x -timeout 60m \
		-scale 100 -trials 2 -load-seconds 30 -report $(CURDIR)/docs/REBUILD-AND-DRILL.md

# Failover and switchover side by side with Patroni (Debian's patroni and
# etcd-server; the benchmark starts its own etcd and Patroni nodes on free
# loopback ports): pgguard defaults, Patroni defaults and Patroni's most
# aggressive documented timing in one run; rewrites the side-by-side table
# in docs/FAILOVER.md. Root only (Patroni and PostgreSQL run as postgres).
# The etcd system service the package installs is stopped and disabled.
bench-patroni: patroni-deps
	$(GO) test ./bench/failover -run '^$$' -bench '^BenchmarkPatroniSideBySide$$' -benchtime 1x -trials 5 -patroni \
		-timeout 120m -report $(CURDIR)/docs/FAILOVER.md

patroni-deps: setup
	@if [ ! -x /usr/bin/patroni ] || [ ! -x /usr/bin/etcd ] || [ ! -x /usr/bin/pgbackrest ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y patroni etcd-server pgbackrest && \
		{ systemctl disable --now etcd 2>/dev/null; service etcd stop 2>/dev/null; true; }; \
	fi

# The same side by side with `pgbench -c 4` writing to the primary
# throughout every trial (restarted through the multi-host string after
# each failover): users' machines are busy too. Its own table in
# docs/FAILOVER.md.
bench-patroni-load: patroni-deps
	$(GO) test ./bench/failover -run '^$$' -bench '^BenchmarkPatroniSideBySide$$' -benchtime 1x -trials 5 -patroni \
		-pgbench-load 4 -timeout 120m -report $(CURDIR)/docs/FAILOVER.md

# Fuzz the decision core for FUZZTIME (issue 12 item 6); `make test` runs
# the committed corpus (internal/ha/testdata/fuzz) with the unit tests.
FUZZTIME ?= 5m
fuzz:
	$(GO) test ./internal/ha -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(FUZZTIME)

# The chaos suite (issue 6): a cluster of network namespaces, faults, a
# lost-write checker; it rewrites docs/RELIABILITY.md. Root only. Narrow it
# with FAULTS=host-kill,link-flap MODES=sync; results accumulate in
# chaos/results.jsonl (committed, so trials add up across machines and runs;
# give each run its own SEED) until chaos-reset.
TRIALS    ?= 20
SEED      ?= 1
FAULTS    ?= all
MODES     ?= async,sync
# SLOT=k (1-9) runs beside the runs of other slots: its own namespaces
# (pgc<k>-*), subnet (10.200.k.0/24) and directory; results go into the
# same file, each trial with how many runs went beside it. Give each run
# a core or two: on the 2-core project machine one sync run keeps the
# cores about a third busy and two side by side about two thirds, while
# three starved the store (chaos/FINDINGS.md, item 20).
SLOT      ?= 0
CHAOS_DIR ?= /tmp/pgguard-chaos$(if $(filter-out 0,$(SLOT)),-$(SLOT))
CHAOS_RESULTS ?= $(CURDIR)/chaos/results.jsonl
# The report's main table holds the trials run as shipped on this commit or
# later (default: chaos/report.go's CurrentSince; CHAOS_SINCE= for its own).
CHAOS_SINCE_FLAG = $(if $(CHAOS_SINCE),-code-since $(CHAOS_SINCE))

chaos: setup
	@command -v iptables >/dev/null || apt-get install -y iptables iproute2 iputils-ping
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaos$$' -count=1 -v -timeout 0 \
		-trials $(TRIALS) -seed $(SEED) -faults $(FAULTS) -modes $(MODES) -slot $(SLOT) \
		-workdir $(CHAOS_DIR) -results $(CHAOS_RESULTS) -report $(CURDIR)/docs/RELIABILITY.md $(CHAOS_SINCE_FLAG)

# chaos-routing runs the faults with the virtual IP and every agent's
# built-in proxy on (issue 14): one more writer each through the proxy and
# the VIP, a VIP-holder sampler, the deposed-primary check on every write;
# its own results and report.
ROUTING_MODES ?= async
chaos-routing: setup
	@command -v iptables >/dev/null || apt-get install -y iptables iproute2 iputils-ping
	@command -v arping >/dev/null || apt-get install -y iputils-arping
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaos$$' -count=1 -v -timeout 0 -vip -proxy \
		-trials $(TRIALS) -seed $(SEED) -faults $(FAULTS) -modes $(ROUTING_MODES) \
		-workdir $(CHAOS_DIR) $(ROUTING_REPORT)

# chaos-routing-report rewrites docs/RELIABILITY-ROUTING.md from
# chaos/results-routing.jsonl, running no trial.
chaos-routing-report:
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaosReport$$' -count=1 -v $(ROUTING_REPORT)

ROUTING_REPORT = -results $(CURDIR)/chaos/results-routing.jsonl -report $(CURDIR)/docs/RELIABILITY-ROUTING.md \
	-report-command "make chaos-routing TRIALS=5 SEED=8001" -regenerate-command "make chaos-routing-report"

# chaos-ci is the short subset `make test` (and so CI) runs: one trial of
# every fault in sync mode, on the cluster as shipped, into a scratch
# results file (the published table is left alone), with the network
# outages halved (-outage-scale 0.5: isolations and port cuts of 10 s, a
# quorum loss of 15 s; the kills' restarts stay 10 s after them), which
# saves about a minute; such trials are marked and never count in the
# published table. 5.7 minutes with the VIP test and full outages on a
# 2-core machine under other load (2026-12-04). It needs root for network
# namespaces; without root it says so and passes.
CHAOS_CI_FAULTS ?= all
chaos-ci:
	@if [ "$$(id -u)" != 0 ]; then echo "chaos-ci: skipped: network namespaces need root (run make test as root for the chaos subset)"; exit 0; fi; \
	command -v iptables >/dev/null || apt-get install -y iptables iproute2 iputils-ping; \
	command -v arping >/dev/null || apt-get install -y iputils-arping; \
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^(TestChaos|TestVIPFollowsThePrimary)$$' -count=1 -v -timeout 20m \
		-trials 1 -seed 1 -faults $(CHAOS_CI_FAULTS) -modes sync -outage-scale 0.5 \
		-workdir /tmp/pgguard-chaos-ci -results /tmp/pgguard-chaos-ci/results.jsonl

# chaos-report rewrites docs/RELIABILITY.md from the results gathered so far.
chaos-report:
	PGGUARD_CHAOS=1 $(GO) test ./chaos -run '^TestChaosReport$$' -count=1 -v \
		-workdir $(CHAOS_DIR) -results $(CHAOS_RESULTS) -report $(CURDIR)/docs/RELIABILITY.md $(CHAOS_SINCE_FLAG)

# chaos-clean removes what interrupted runs of every slot may have left:
# the agents and postmasters they recorded (killed by their recorded PIDs),
# namespaces named pgc-* and pgc<k>-*, and the unreachable routes of
# 10.200.k.0/24. chaos-reset also drops the records.
chaos-clean: build
	-@for d in /tmp/pgguard-chaos/*/ /tmp/pgguard-chaos-[0-9]/*/; do [ -f $$d/demo.json ] && for n in n1 n2 n3; do $(BIN) demo kill $$n --dir $$d >/dev/null 2>&1; done; done; true
	-@for ns in $$(ip netns list | awk '/^pgc[0-9]?-/ {print $$1}'); do ip netns del $$ns; done
	-@for k in 0 1 2 3 4 5 6 7 8 9; do ip route del unreachable 10.200.$$k.0/24 2>/dev/null; done; true

chaos-reset: chaos-clean
	rm -rf /tmp/pgguard-chaos /tmp/pgguard-chaos-[0-9] $(CHAOS_RESULTS)

clean:
	rm -rf bin
