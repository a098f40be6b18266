# execq: make run starts everything on this machine; make test runs every test.
GO      ?= go
BIN     := bin/execq
IMAGE   ?= execq-sandbox:latest
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build setup sandbox-image language-images run test test-unit test-chaos test-gvisor smoke bench lint clean

# execq, and beside it the static agent it mounts into every sandbox.
build:
	$(GO) build -o $(BIN) ./cmd/execq
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/execq-agent ./cmd/execq-agent

# Installs what is missing (redis-server, busybox-static, docker.io), starts
# dockerd if needed and builds the sandbox image and the language images
# (execq run --lang) where they are missing or stale.
setup:
	scripts/setup.sh --languages

sandbox-image:
	scripts/sandbox-image.sh $(IMAGE)

# execq-python, execq-node and execq-c from Debian packages (debootstrap,
# docker import); an image whose build hash is unchanged is kept.
language-images:
	scripts/language-images.sh

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
	$(GO) test -tags integration -race -count=1 -timeout 30m ./...

# The adversarial and fault suite (internal/chaos, build tag chaos): hostile
# commands, escape attempts, attacks on the next tenant, on collected files
# and on the host, hostile requests, a SIGKILLed worker, Redis restarts, a
# sandbox killed from outside, an engine that goes away, 1,000 executions on
# two workers. Real redis-server and Docker, once per runtime; the summary
# tables are also written to bin/chaos-summary-RUNTIME.txt.
CHAOS_RUNTIMES ?= agent docker-exec
CHAOS = $(GO) test -tags chaos -race -count=1 -timeout 40m ./internal/chaos/
test-chaos:
	scripts/setup.sh --languages
	@for rt in $(CHAOS_RUNTIMES); do \
		echo "chaos: runtime $$rt"; \
		EXECQ_CHAOS_RUNTIME=$$rt EXECQ_CHAOS_SUMMARY=$(CURDIR)/bin/chaos-summary-$$rt.txt $(CHAOS) || exit 1; \
		cat $(CURDIR)/bin/chaos-summary-$$rt.txt; \
	done

# The runtimes' contract suite, the worker's integration tests and the
# chaos suite under gVisor (runsc, registered with the engine by
# scripts/setup.sh --with-runsc), with the default runtime.
test-gvisor:
	scripts/setup.sh --with-runsc --languages
	EXECQ_TEST_OCI_RUNTIME=runsc $(GO) test -tags integration -count=1 -timeout 20m ./internal/sandbox/... ./worker/
	EXECQ_TEST_OCI_RUNTIME=runsc EXECQ_CHAOS_RUNTIME=agent EXECQ_CHAOS_SUMMARY=$(CURDIR)/bin/chaos-summary-gvisor.txt $(CHAOS)
	@cat $(CURDIR)/bin/chaos-summary-gvisor.txt

# Unit tests only: no Docker, no redis-server, no browser. Tests that need
# them carry the build tag integration (make test) or chaos (make test-chaos).
test-unit:
	$(GO) test -race -count=1 ./...

# The README's set-up, end to end: a worker, then execq run.
smoke: build
	scripts/setup.sh --test
	scripts/smoke.sh $(BIN)

bench: setup build
	$(BIN) bench

# gofmt, go vet and staticcheck, over every build tag's files.
STATICCHECK = $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) vet -tags chaos ./internal/chaos/
	$(STATICCHECK) -tags integration ./...
	$(STATICCHECK) -tags chaos ./internal/chaos/

clean:
	rm -rf bin
