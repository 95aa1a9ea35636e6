# drill — restore drills for PostgreSQL backups.
# `make help` lists the targets.

GO       ?= go
BIN      := bin/drill
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell r=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || r=$$r+dirty; } && echo $$r)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)
STATICCHECK_VERSION := v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/drill
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/drill

PREFIX   ?= /usr/local
SANDBOX_USER := drill-sandbox

.PHONY: install
install: build users ## install bin/drill into $(PREFIX)/bin (docs into $(PREFIX)/share/doc/drill) and create the OS user clusters run as
	install -d $(PREFIX)/bin $(PREFIX)/share/doc/drill
	install -m 0755 $(BIN) $(PREFIX)/bin/drill
	install -m 0644 README.md docs/*.md $(PREFIX)/share/doc/drill/

.PHONY: users
users: ## create the OS user throwaway clusters run as (drill-sandbox; needs root)
	@if id -u $(SANDBOX_USER) >/dev/null 2>&1; then \
	  echo "OS user $(SANDBOX_USER) exists"; \
	elif [ "$$(id -u)" -eq 0 ]; then \
	  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(SANDBOX_USER) && \
	  echo "created OS user $(SANDBOX_USER): drill's throwaway clusters run as it"; \
	else \
	  echo "not root: run 'sudo make users' to create the OS user $(SANDBOX_USER) (see docs/security.md)"; \
	fi

.PHONY: tools
tools: ## install the backup tools the physical-backup tests drive (pgbackrest, barman-cli-cloud; Debian, needs root)
	@missing=""; \
	command -v pgbackrest >/dev/null 2>&1 || missing="$$missing pgbackrest"; \
	command -v barman-cloud-restore >/dev/null 2>&1 || missing="$$missing barman-cli-cloud"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }; \
	  else \
	    echo "missing:$$missing (sudo apt-get install$$missing); the physical-backup tests fail without them"; \
	  fi; \
	fi

.PHONY: test
test: tools ## run all tests (real PostgreSQL; DRILL_TEST_DATABASE_URL or a private cluster)
	@echo "testing every package side by side; results print as they come, the end-to-end tests of the binary (cmd/drill, about 3 minutes) last"
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/cmd/drill$$') ./cmd/drill

.PHONY: demo
demo: ## run a real drill end to end on a sample database (no AWS needed)
	bash examples/demo/demo.sh

.PHONY: demo-aurora
demo-aurora: ## a real Aurora drill (cluster snapshot → cluster + instance) against the RDS API emulator
	bash examples/demo/demo-rds.sh aurora

.PHONY: demo-physical
demo-physical: ## a point-in-time drill of a pgBackRest repository made on the spot
	bash examples/demo/demo-physical.sh

.PHONY: demo-rds
demo-rds: ## run a real RDS drill against the RDS API emulator (no AWS account needed)
	bash examples/demo/demo-rds.sh

.PHONY: lint
lint: ## gofmt + go vet + staticcheck + go mod tidy check
	@test -z "$$(gofmt -l .)" || { echo "gofmt -l: these files need gofmt -w:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) mod tidy -diff

.PHONY: bench
bench: ## benchmarks (ratios against a baseline in the same run; docs/performance.md): checksum, fingerprint, checks side by side, drill dump, pages
	@echo "goals: fingerprint x-count <= 5; checks side by side x-sum <= 0.7 (2 cores); compare x-checksum-both <= 1.5, x-identical <= 2, md5-chunks-x >= 5; provision template-ms <= 300; drill x-byhand <= 0.9; drill from S3 x-local <= 1.1, peak-rss-MB < 100; pages at scale p99-ms < 50; the rest are watched, not bounded"
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./verify/ ./drills/pgdump/ ./drills/local/ ./cmd/drill/
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 30m ./web/

.PHONY: chaos
chaos: ## kill workers and drill run at random moments; count what is left (minutes; not part of test)
	$(GO) test -tags chaos -count=1 -timeout 60m -run '^TestChaos$$' -v ./cmd/drill/

.PHONY: clean
clean: ## remove build output and the demo's files (its backups and state under $${TMPDIR:-/tmp}/drill-demo)
	rm -rf bin .demo testoutput "$${DRILL_DEMO_DIR:-$${TMPDIR:-/tmp}/drill-demo}"
