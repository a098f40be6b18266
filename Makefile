# execq: make run starts everything on this machine; make test runs every test.
GO      ?= go
BIN     := bin/execq
IMAGE   ?= execq-sandbox:latest
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build setup sandbox-image run test test-unit test-chaos smoke bench lint clean

# execq, and beside it the static agent it mounts into every sandbox.
build:
	$(GO) build -o $(BIN) ./cmd/execq
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/execq-agent ./cmd/execq-agent

# Installs what is missing (redis-server, busybox-static, docker.io), starts
# dockerd if needed and builds the sandbox image if absent.
setup:
	scripts/setup.sh

sandbox-image:
	scripts/sandbox-image.sh $(IMAGE)

# The execq image (deploy/Dockerfile, used by docker-compose.yml): a static
# binary in an empty image, so it builds without a registry. .dockerignore
# keeps the build context to that binary.
.PHONY: image
image:
	CGO_ENABLED=0 $(GO) build -o bin/execq-static ./cmd/execq
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/execq-agent ./cmd/execq-agent
	docker build -f deploy/Dockerfile -t execq:latest .

# Worker and dashboard in one process, with an embedded Redis on
# 127.0.0.1:6379 (the address execq run uses by default).
run: setup build
	$(BIN) up

# Every test, integration tests included (real redis-server, real Docker,
# headless Chromium).
test:
	scripts/setup.sh --test
	$(GO) test -race -count=1 -timeout 30m ./...

# The adversarial and fault suite (internal/chaos, build tag chaos): hostile
# commands, escape attempts, hostile requests, a SIGKILLed worker, Redis
# restarts, a sandbox killed from outside, an engine that goes away, 1,000
# executions on two workers. Real redis-server and Docker; about 8 minutes.
# The summary table is also written to $(CHAOS_SUMMARY).
CHAOS_SUMMARY ?= $(CURDIR)/bin/chaos-summary.txt
test-chaos:
	scripts/setup.sh
	EXECQ_CHAOS_SUMMARY=$(CHAOS_SUMMARY) $(GO) test -tags chaos -race -count=1 -timeout 40m ./internal/chaos/
	@cat $(CHAOS_SUMMARY)

# Unit tests only: no Docker, no redis-server, no browser.
test-unit:
	$(GO) test -race -count=1 -skip 'TestBrowser' ./tasks/ ./producer/ ./internal/rdb/ ./internal/stream/ ./internal/pool/ ./internal/dashboard/ ./internal/metrics/
	$(GO) test -race -count=1 -run 'TestUnit' ./worker/

# The README's set-up, end to end: a worker, then execq run.
smoke: setup build
	scripts/smoke.sh $(BIN)

bench: setup build
	$(BIN) bench

lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
