# MonkeyCI fleet. `make test` is what CI runs (.ci/run); `make bench` prints
# the figures the issues ask for.
GO       ?= go
BIN      := bin/monkeyci
PKGS     := ./...
# Packages with goroutines of their own run under the race detector.
RACEPKGS := ./agent/... ./sidecar/... ./console/... ./script/... ./coordinator/... ./admin/... ./forge/... ./secret/... ./sdk/... ./buildscript/...
FUZZTIME ?= 10s

.PHONY: all build images tools test short fuzz bench proto clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/monkeyci

# Local images for tests and examples: no registry can be reached.
images:
	bash images/build.sh

# Servers the tests start as processes of their own: versitygw, an
# S3-compatible store (coordinator/blob's tests; internal/s3test).
GOBIN    := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
tools:
	@command -v versitygw >/dev/null || test -x $(GOBIN)/versitygw || \
		{ echo "installing versitygw (the S3 server the tests run against)"; $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0; }

test: images tools
	$(GO) vet $(PKGS)
	test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(GO) test -count=1 -timeout 20m -race $(RACEPKGS)

# The fast tier: no Docker engine, no binary built (what needs them skips).
short:
	$(GO) test -short -count=1 $(PKGS)

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseYAML -fuzztime $(FUZZTIME) ./pipeline/
	$(GO) test -run '^$$' -fuzz FuzzParseJSON -fuzztime $(FUZZTIME) ./pipeline/
	$(GO) test -run '^$$' -fuzz FuzzParseEDN -fuzztime $(FUZZTIME) ./pipeline/
	$(GO) test -run '^$$' -fuzz FuzzDecodeEDN -fuzztime $(FUZZTIME) ./events/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./forge/
	$(GO) test -run '^$$' -fuzz FuzzStream -fuzztime $(FUZZTIME) ./secret/
	$(GO) test -run '^$$' -fuzz FuzzParseTrace -fuzztime $(FUZZTIME) ./coordinator/pool/sim/

bench: images
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

proto:
	protoc -I proto -I /usr/include --go_out=. --go_opt=module=github.com/monkeyci/monkeyci \
		--go-grpc_out=. --go-grpc_opt=module=github.com/monkeyci/monkeyci proto/jobapi/jobapi.proto proto/fleet/fleet.proto proto/fleet/admin.proto

clean:
	rm -rf bin
