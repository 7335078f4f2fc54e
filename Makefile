# plba — build, run and test the host.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS   := -X github.com/plba/plba/platform/host/internal/buildinfo.Version=$(VERSION) \
             -X github.com/plba/plba/platform/host/internal/buildinfo.Commit=$(COMMIT)
BENCHTIME ?= 1s
BENCHCOUNT ?= 5

.PHONY: build run test test-race lint bench fmt tidy

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/host ./cmd/host

run: build
	./bin/host run --config configs/demo.yaml

# Every test that needs nothing installed; integration suites join in when
# their PLBA_TEST_* variable is set, and the first lines say which are
# skipped. test-race is the same under the race detector (CI runs both).
test:
	GO=$(GO) scripts/test -timeout 20m

test-race:
	GO=$(GO) scripts/test -race -timeout 30m

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	@for m in $$(git ls-files 'examples/*/go.mod'); do d=$$(dirname $$m); echo "lint: $$d"; (cd $$d && $(GO) vet ./... && $(GO) mod tidy -diff) || exit 1; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	$(GO) mod tidy
