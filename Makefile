# drill — restore drills for PostgreSQL backups.
# `make help` lists the targets.

GO       ?= go
BIN      := bin/drill
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/drill
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/drill

.PHONY: test
test: ## run all tests (real PostgreSQL; DRILL_TEST_DATABASE_URL or a private cluster)
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: demo
demo: ## run a real drill end to end on a sample database (no AWS needed)
	bash examples/demo/demo.sh

.PHONY: demo-rds
demo-rds: ## run a real RDS drill against the RDS API emulator (no AWS account needed)
	bash examples/demo/demo-rds.sh

.PHONY: lint
lint: ## go vet + staticcheck + go mod tidy check
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	$(GO) mod tidy -diff

.PHONY: bench
bench: ## benchmarks: checksum vs count(*) on 1M rows; pages over 10k runs vs /healthz (ratios)
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./verify/
	$(GO) test -run '^$$' -bench . -benchtime 20x -timeout 30m ./web/

.PHONY: clean
clean: ## remove build output and demo files
	rm -rf bin .demo testoutput
