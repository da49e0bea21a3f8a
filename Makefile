# ds01 awareness layer. `make test` is the one test command; `make run` and
# `make demo` show the product working. See README.md.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# The built commands leave out urfave/cli's man page and Markdown writers
# (and the Markdown parser they bring, ~100 page faults at every start);
# the docgen build that writes the man pages keeps them.
BUILDTAGS := urfave_cli_no_docs
# go-nvml's headers are full of deprecation notices that say nothing to us.
export CGO_CFLAGS ?= -Wno-deprecated-declarations
STATICCHECK_VERSION := v0.8.2
ENGINE_DIR ?= $(CURDIR)/.engine
RUN_DIR    := $(CURDIR)/.run

.PHONY: all build test unit integration lint run demo clean gpu-test bench fuzz soak

all: build

build: bin/ds01-scan bin/ds01-workloads

# ds01-scan is built with cgo: user names resolve through NSS (LDAP, SSSD)
# and NVML is loaded through cgo.
bin/ds01-scan: FORCE
	CGO_ENABLED=1 $(GO) build -trimpath -tags $(BUILDTAGS) -ldflags '$(LDFLAGS)' -o $@ ./cmd/ds01-scan

# ds01-workloads is static: it reads one file and runs anywhere.
bin/ds01-workloads: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(BUILDTAGS) -ldflags '$(LDFLAGS)' -o $@ ./cmd/ds01-workloads

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

# The long fault runs (churn soak, kill -9) on a private engine, figures in
# one table at the end. make test runs their short versions.
SOAK_DURATION ?= 5m
SOAK_CONTAINERS ?= 200
KILL_COUNT ?= 500
soak: build bin/ds01-scan-nvmlmock
	@rm -f .run/soak-report.txt; mkdir -p .run
	d=$$(mktemp -d /tmp/ds01-soak.XXXXXX); \
	DS01_TEST_BIN=$(CURDIR)/bin DS01_TEST_ENGINE_DIR=$$d/engine DS01_SOAK_DURATION=$(SOAK_DURATION) \
	DS01_SOAK_CONTAINERS=$(SOAK_CONTAINERS) DS01_KILL_COUNT=$(KILL_COUNT) DS01_SOAK_REPORT=$(CURDIR)/.run/soak-report.txt \
	bash hack/with-engine.sh $$d/engine -- $(GO) test -tags integration -count=1 -timeout 60m -run 'TestSoak|TestKill' ./test/integration; \
	status=$$?; rm -rf $$d; echo; echo "== soak figures"; cat .run/soak-report.txt; exit $$status

# Each fuzz target for FUZZTIME (CI runs them briefly; their seeds also run
# in every go test). A crasher lands in testdata/fuzz and fails every later
# run, so one retry absorbs only a fuzzing worker lost to a loaded machine.
FUZZTIME ?= 5s
FUZZ_TARGETS := pkg/inventory:FuzzParse pkg/inventory:FuzzDecodeMatchesEncodingJSON \
	pkg/inventory:FuzzEncodeEvent pkg/inventory:FuzzSafeText pkg/inventory:FuzzEscapeJSON \
	pkg/detect:FuzzParseCgroupFile pkg/detect:FuzzContainerFromCgroup pkg/detect:FuzzParseStatus \
	pkg/detect:FuzzParseCmdline pkg/detect:FuzzParseStat pkg/detect:FuzzDeclaredGPU pkg/detect:FuzzProcessLauncher \
	pkg/detect:FuzzDecodeContainerListMatchesEncodingJSON \
	pkg/attribution:FuzzParseSubIDs cmd/ds01-workloads:FuzzWriteJSON
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=./$${t%%:*} f=$${t#*:}; \
		run() { $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; }; \
		run || { echo "retrying $$f once"; run; } || exit 1; \
	done

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
# scans, and the result; then the GPU ledger over go-nvml's mock driver.
demo: build bin/ds01-scan-nvmlmock
	bash hack/demo.sh

# ds01-scan whose NVML is go-nvml's mock server, reporting what the file in
# $$DS01_NVML_MOCK says: for the integration suite and the demo only.
bin/ds01-scan-nvmlmock: FORCE
	CGO_ENABLED=1 $(GO) build -tags nvmlmock -o $@ ./cmd/ds01-scan

clean:
	-bash hack/engine.sh stop $(ENGINE_DIR) 2>/dev/null
	rm -rf bin $(RUN_DIR) $(ENGINE_DIR)

# --- Installation. README.md, "Install".
#
#   sudo make install                  binaries, units, tmpfiles, logrotate, man
#                                      pages, completions; enables the timer when
#                                      systemd runs and DESTDIR is empty
#   sudo make uninstall                removes exactly that; state and logs stay
#   make install DESTDIR=/tmp/x PREFIX=/usr     for packagers
#   make deb                           bin/ds01_<version>_<arch>.deb (nfpm)
.PHONY: man completion install uninstall deb systemd-e2e
PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
NFPM_VERSION := v2.45.2
NFPM       ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
INSTALL_ENV = PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' SYSCONFDIR='$(SYSCONFDIR)' BUILD=bin

# Man pages and completions are generated from each command's cli.App by a
# build of it with -tags docgen (cmd/*/docgen.go).
DOCGEN = CGO_ENABLED=1 $(GO) run -tags docgen -ldflags '-X main.version=$(VERSION)'

man:
	@mkdir -p bin/man
	$(DOCGEN) ./cmd/ds01-scan man >bin/man/ds01-scan.8
	$(DOCGEN) ./cmd/ds01-workloads man >bin/man/ds01-workloads.1
	gzip -9nf bin/man/ds01-scan.8 bin/man/ds01-workloads.1

completion:
	@mkdir -p bin/completion/bash bin/completion/zsh
	$(DOCGEN) ./cmd/ds01-scan bash >bin/completion/bash/ds01-scan
	$(DOCGEN) ./cmd/ds01-workloads bash >bin/completion/bash/ds01-workloads
	$(DOCGEN) ./cmd/ds01-scan zsh >bin/completion/zsh/_ds01-scan
	$(DOCGEN) ./cmd/ds01-workloads zsh >bin/completion/zsh/_ds01-workloads

install: build man completion
	$(INSTALL_ENV) bash deploy/install.sh install

uninstall:
	$(INSTALL_ENV) bash deploy/install.sh uninstall

deb: build man completion
	BUILD=bin VERSION='$(VERSION)' NFPM='$(NFPM)' GOARCH=$$($(GO) env GOARCH) bash deploy/deb.sh

# The package installed in a real systemd (a Debian container on a private
# Docker engine): the timer fires, the hardened unit scans. Needs root.
systemd-e2e: deb
	bash hack/systemd-e2e.sh "$$(ls -t bin/ds01_*.deb | head -n 1)"
