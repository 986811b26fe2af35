# fray — run `make help` for the targets.
GO        ?= go
PKGS      ?= ./...
TIMEOUT   ?= 45m
BENCH_N   ?= 20000

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build every package and the three binaries into ./bin
	$(GO) build ./...
	$(GO) build -o bin/ ./cmd/fray ./cmd/fray-broker ./cmd/fray-worker

.PHONY: test
test: vet ## the whole suite: Go unit and integration (real binaries, real Ray and Iris heads, -race), then the Python suite
	$(GO) test -race -count=1 -timeout $(TIMEOUT) $(PKGS)
	$(MAKE) test/python

# The frayhq test venv: the same directory, pins and lock as the Go
# integration tests' backends.PyVenv ($FRAY_BUILD_DIR, else .build).
PYVENV_CMD = $(GO) run ./integration/backends/venvcmd venv-py

.PHONY: test/python
test/python: build ## the frayhq pytest suite (real local clusters of ./bin's binaries) and ruff
	@venv=$$($(PYVENV_CMD)) || exit 1; \
	echo "$$venv/bin/python -m pytest python/tests"; \
	FRAY_BIN_DIR=$(CURDIR)/bin PYTHONPATH=$(CURDIR)/python/src $$venv/bin/python -m pytest -q python/tests || exit $$?; \
	$$venv/bin/ruff check python && $$venv/bin/ruff format --check python

.PHONY: wheel
wheel: ## a platform wheel of frayhq carrying fray, fray-broker and fray-worker, in dist/
	$(GO) build -trimpath -o .build/wheel-bin/ ./cmd/fray ./cmd/fray-broker ./cmd/fray-worker
	@venv=$$($(PYVENV_CMD)) || exit 1; \
	FRAY_WHEEL_BIN_DIR=$(CURDIR)/.build/wheel-bin $$venv/bin/python -m pip wheel --quiet --no-deps -w dist ./python && \
	ls dist/frayhq-*.whl

.PHONY: test/race
test/race: test ## same as test: every package runs under the race detector

.PHONY: test/short
test/short: ## unit tests only (no integration package)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

# The Go files to check for formatting, generated code aside.
GOFILES = $$(grep -L '^// Code generated .* DO NOT EDIT\.$$' $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))

.PHONY: vet
vet: ## go vet, gofmt, import grouping (goimports) and staticcheck; the tools are pinned in go.mod
	$(GO) vet ./...
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) tool goimports -l $(GOFILES)); if [ -n "$$out" ]; then echo "imports need grouping (standard library first; go tool goimports -w FILE):"; echo "$$out"; exit 1; fi
	$(GO) tool staticcheck ./...

.PHONY: lint
lint: vet ## same as vet: vet, gofmt, goimports and staticcheck

.PHONY: bench
bench: ## fray bench tasks (with the bare-JetStream baseline) and objects
	$(GO) run ./cmd/fray bench tasks --n $(BENCH_N) --concurrency 8 --baseline
	$(GO) run ./cmd/fray bench objects --size 1g

.PHONY: demo
demo: ## a local cluster counting words over a text corpus with tasks and objects
	$(GO) run ./examples/wordcount

.PHONY: fuzz
fuzz: ## run each wire decoder's fuzz target for 20 s
	$(GO) test ./internal/taskwire -run '^$$' -fuzz FuzzDecodeTask -fuzztime 20s
	$(GO) test ./tasks -run '^$$' -fuzz FuzzDecodeResult -fuzztime 20s
	$(GO) test ./broker -run '^$$' -fuzz FuzzDecodeWorkerInfo -fuzztime 20s
	$(GO) test ./objects -run '^$$' -fuzz FuzzRefDecode -fuzztime 20s
	$(GO) test ./internal/metrics -run '^$$' -fuzz FuzzBrokerMetricsReadAnyTaskOrResult -fuzztime 20s

.PHONY: clean
clean: ## remove build output (keeps the cached Python virtualenvs in .build)
	rm -rf bin dist .build/wheel-bin
