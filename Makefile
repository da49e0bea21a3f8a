# ds01 awareness layer. `make test` is the one test command; `make run` and
# `make demo` show the product working. See README.md.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# go-nvml's headers are full of deprecation notices that say nothing to us.
export CGO_CFLAGS ?= -Wno-deprecated-declarations
STATICCHECK_VERSION := v0.8.2
ENGINE_DIR ?= $(CURDIR)/.engine
RUN_DIR    := $(CURDIR)/.run

.PHONY: all build test unit integration lint run demo clean gpu-test bench

all: build

build: bin/ds01-scan bin/ds01-workloads

# ds01-scan is built with cgo: user names resolve through NSS (LDAP, SSSD)
# and NVML is loaded through cgo.
bin/ds01-scan: FORCE
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/ds01-scan

# ds01-workloads is static: it reads one file and runs anywhere.
bin/ds01-workloads: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/ds01-workloads

FORCE:

# Unit tests, then the integration suite against a private Docker engine.
# With CI=true every suite that cannot run is a failure, not a skip.
test:
	bash hack/test.sh

unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

integration: build
	bash hack/test.sh integration

# The real-GPU test as one binary (cgo, x86-64) to carry to a GPU machine:
#   ./detect-gpu.test -test.run TestObserveRealGPU -test.v
gpu-test:
	CGO_ENABLED=1 $(GO) test -tags gpu -c -o bin/detect-gpu.test ./pkg/detect

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# What a scan costs as a server fills up (100, 300, 1,000 containers), next
# to docker ps and docker inspect; then the Go micro-benchmarks. Not part of
# make test (which smoke-tests the harness at a tiny N).
bench: build
	bash hack/bench.sh $(BENCH_SIZES)

# One scan of this machine into ./.run, then show it.
run: build
	@mkdir -p $(RUN_DIR)
	./bin/ds01-scan --state-dir $(RUN_DIR) --events-file $(RUN_DIR)/events.jsonl
	./bin/ds01-workloads --inventory $(RUN_DIR)/workload-inventory.json --all

# A private engine with one container of every origin and GPU channel, two
# scans, and the result.
demo: build
	bash hack/demo.sh

clean:
	-bash hack/engine.sh stop $(ENGINE_DIR) 2>/dev/null
	rm -rf bin $(RUN_DIR) $(ENGINE_DIR)
