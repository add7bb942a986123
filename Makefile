# The two commands of the README are `make demo` and `make test`.
GO      ?= go
BIN     := bin
TOOLS   := $(CURDIR)/.cache/bin
PKGS    := ./...
# Packages whose tests also run under the race detector (STYLE.md).
RACE    := ./engine/... ./safety/... ./plugins/... ./reports/... ./experiments/... ./probes/... ./internal/...

.PHONY: all build test deps demo lint bench generate tools cluster clean

all: build

build:
	$(GO) build -o $(BIN)/chaos ./cmd/chaos
	$(GO) build -o $(BIN)/demo-shop ./cmd/demo-shop

# Every test: lint, unit (race detector on the core packages), CLI scripts
# and end-to-end tests against the real demo service.
test: deps lint build cluster
	$(GO) test -race -count=1 $(RACE)
	CHAOS_CLUSTER_BIN=$(TOOLS) $(GO) test -count=1 ./cmd/... ./e2e/...
	cd examples/plugins/http-fault && $(GO) test -count=1 ./...

demo: build
	./scripts/demo.sh

tools:
	./scripts/tools.sh

# The real Kubernetes test cluster (test-cluster, kwok) in .cache/bin; built
# once (a cold build is ~15-20 minutes), reused after.
cluster:
	./scripts/cluster.sh

# Debian packages the tests use (a real Prometheus); installed once, as root.
deps:
	./scripts/deps.sh

lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)

bench: build
	./scripts/bench.sh

generate: tools
	PATH=$(TOOLS):$$PATH protoc -I plugins/sdk/proto \
	  --go_out=paths=source_relative:plugins/sdk/proto \
	  --go-grpc_out=paths=source_relative:plugins/sdk/proto \
	  plugins/sdk/proto/fault.proto

clean:
	rm -rf $(BIN) reports-out
