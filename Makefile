# credvault — every target installs what it needs into .tools/ (git-ignored),
# so `make run` and `make test` work on a fresh machine.

SHELL      := bash
TOOLS      := $(CURDIR)/.tools
TOOLBIN    := $(TOOLS)/bin
BUF        := $(CURDIR)/.ci/tools/node_modules/.bin/buf
GRPCURL    := $(TOOLBIN)/grpcurl
OAUTH_NPM  := e2e/oauthserver/node_modules
GO_TOOLS   := $(TOOLBIN)/protoc-gen-go $(TOOLBIN)/protoc-gen-go-grpc $(GRPCURL)
GOTEST     ?= go test
TESTFLAGS  ?= -race -count=1 -timeout 12m

export PATH := $(TOOLBIN):$(PATH)

.PHONY: all tools generate check-generate lint build run test bench fuzz soak clean

all: build

$(GO_TOOLS) &: .ci/tools/go.mod .ci/tools/go.sum
	cd .ci/tools && GOBIN=$(TOOLBIN) go install tool
	@touch $(GO_TOOLS)

# npm ci refuses buf's lock file (its per-platform optional packages are
# recorded only for the platform that wrote it); npm install honours the
# committed lock file all the same.
$(BUF): .ci/tools/package.json .ci/tools/package-lock.json
	cd .ci/tools && npm install --no-audit --no-fund --loglevel=error
	@touch $(BUF)

$(OAUTH_NPM): e2e/oauthserver/package.json e2e/oauthserver/package-lock.json
	cd e2e/oauthserver && npm ci --no-audit --no-fund --loglevel=error
	@touch $(OAUTH_NPM)

tools: $(GO_TOOLS) $(BUF) $(OAUTH_NPM)

## generate: rebuild gen/ from proto/ with buf.
generate: tools
	rm -rf gen
	$(BUF) generate

## check-generate: fail when gen/ is not what `make generate` produces.
check-generate: generate
	@git diff --exit-code --stat -- gen || { echo "gen/ is out of date: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has untracked files: run make generate and commit"; exit 1; }

## lint: buf lint, gofmt, go vet.
lint: $(BUF)
	$(BUF) lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt needed: $$out"; exit 1; }
	go vet ./...

## build: the daemon, the KMS fake and the load harness into bin/.
build:
	go build -o bin/credvaultd ./cmd/credvaultd
	go build -o bin/kmsfake ./cmd/kmsfake
	go build -o bin/credvault-bench ./cmd/credvault-bench

## run: the service on its embedded defaults (data dir ./data, gRPC 127.0.0.1:7443, HTTP 127.0.0.1:7444).
run: build
	./bin/credvaultd serve

## test: everything CI checks: generated code, lint, unit, integration and
## e2e tests, then each fuzz target for FUZZTEST (default 10s).
FUZZTEST ?= 10s
test: tools check-generate lint
	$(GOTEST) $(TESTFLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTEST)

## bench: Go micro-benchmarks of the hot path, then the load harness
## (resolve vs health Check, KMS calls, writes, refresh storm, 1k/100k/1M).
bench: build
	go test -run '^$$' -bench . -benchmem ./authtypes/ ./vault/...
	./bin/credvault-bench $(BENCHFLAGS)

## soak: the mixed-load soak test for SOAK_DURATION (default 60s; make test runs 3s).
SOAK_DURATION ?= 60s
soak:
	SOAK_DURATION=$(SOAK_DURATION) go test -race -count=1 -run '^TestSoak$$' -v -timeout 30m ./vault/ | grep -E 'soak|^(ok|FAIL|---)'

## fuzz: each fuzz target for FUZZTIME (default 1m).
FUZZTIME ?= 1m
FUZZ_TARGETS := authtypes:FuzzExpand authtypes:FuzzSecretDecode authtypes:FuzzState authtypes:FuzzJWTExpiry \
	authtypes:FuzzTokenResponse vault/envelope:FuzzParse vault/auditlog:FuzzDecode vault/boltstore:FuzzReadJournal server:FuzzCallback
fuzz:
	@FUZZTIME=$(FUZZTIME) .ci/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf bin .tools
