# Garo — GitHub Actions runner orchestrator on Temporal.
#   make run    the whole stack on this machine (Temporal dev server + Web UI, server, agent)
#   make test   unit, replay and end-to-end tests, then a few seconds of each fuzz target

GO      ?= go
BIN     := $(CURDIR)/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

TEMPORAL_CLI_VERSION := v1.5.1
STATICCHECK_VERSION  := v0.8.2

.PHONY: all tools build run test test-unit test-e2e test-temporal temporal-server fuzz record-histories lint bench bench-go clean

all: build

# The temporal CLI (dev server and Web UI), built from the Go module proxy.
tools: $(BIN)/temporal

$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/ ./cmd/garo ./cmd/githubsim ./cmd/garo-bench

run: tools build
	$(BIN)/garo dev

# Garo's production Temporal server (PostgreSQL, mTLS, the per-agent
# authorizer) and Temporal's SQL schema tool, from deploy/temporal: a Go
# module of its own, whose dependencies stay apart from the SDK's.
temporal-server:
	cd deploy/temporal && $(GO) build -o $(BIN)/garo-temporal . && $(GO) build -o $(BIN)/temporal-sql go.temporal.io/server/cmd/tools/sql

test: tools
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-temporal
	$(MAKE) --no-print-directory fuzz

# The authorizer of Garo's Temporal server (deploy/temporal, its own module).
test-temporal:
	cd deploy/temporal && $(GO) vet ./... && $(GO) test -count=1 ./...

# Every fuzz target (func Fuzz* in a _test.go) runs for FUZZTIME beyond its
# seed corpus (f.Add and testdata/fuzz), which go test above ran already.
# A failing input is written to the package's testdata/fuzz: commit it.
FUZZTIME ?= 3s
fuzz:
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sort | while IFS=: read -r file fn; do \
		name=$${fn#func }; pkg=$$(dirname "$$file"); \
		echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" >/tmp/garo-fuzz.$$$$.log 2>&1 \
			|| { cat /tmp/garo-fuzz.$$$$.log; rm -f /tmp/garo-fuzz.$$$$.log; exit 1; }; \
		tail -n 1 /tmp/garo-fuzz.$$$$.log; rm -f /tmp/garo-fuzz.$$$$.log; \
	done

test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /tests)

test-e2e: tools
	$(GO) test -count=1 -timeout 20m -v ./tests/...

# Record, from real runs, the histories that the replay tests replay. One
# already in workflows/testdata is never overwritten: it stands for
# workflows still running. After a change to a workflow, give its recording
# a new name in the test and record it beside the old ones.
record-histories: tools
	GARO_RECORD_HISTORIES=1 $(GO) test -count=1 -run 'TestAgentLifecycle|TestPoolServesJobsWithinItsLimits|TestSeveralPoolsOfOneRepository|TestAPoolForgetsATerminatedRunnerAfterContinueAsNew|TestCrashServerWhileWebhooksArrive|TestReaperRemovesOrphansAndKeepsABusyRunner|TestALostJobIsRunAgainOnce|TestJobsAreServedWhenEveryWebhookIsLost|TestARepositoryWorkflowOfTheReleaseBeforeHandsItsPoolOver' ./tests/

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# make bench [BENCH=small|burst|wide|reuse|steady|deep|fanout|fleet|ramp|idle]
# [TEMPORAL=dev|postgres]: the whole stack under load (docs/benchmarks.md),
# on the Temporal dev server or on deploy/temporal's server on PostgreSQL
# (apt-get install postgresql); results in bench/results. make bench-go
# runs the Go micro-benchmarks.
BENCH    ?= small
TEMPORAL ?= dev
bench: tools build $(if $(filter postgres,$(TEMPORAL)),temporal-server)
	VERSION=$(VERSION) $(BIN)/garo-bench -scenario $(BENCH) -temporal $(TEMPORAL) -bin $(BIN) -out bench/results

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) .garo
