# plba — build, run and test the host.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS   := -X github.com/plba/plba/platform/host/internal/buildinfo.Version=$(VERSION) \
             -X github.com/plba/plba/platform/host/internal/buildinfo.Commit=$(COMMIT)
BENCHTIME ?= 1s
BENCHCOUNT ?= 5

.PHONY: build run test lint bench fmt tidy

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/host ./cmd/host

run: build
	./bin/host run --config configs/demo.yaml

test:
	$(GO) test -race -count=1 -timeout 20m ./...
	cd examples/shipments && $(GO) vet ./... && $(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	$(GO) mod tidy
