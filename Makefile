# eventhost. `make demo` and `make test` are the quick start.
GO      ?= go
BIN     := bin
PLUGINS := sales-histogram events-summary customer-invoices
BENCH   ?= .
COUNT   ?= 1

.PHONY: all build test test-short bench demo proto vet fmt clean

all: build

build:
	$(GO) build -o $(BIN)/eventhost ./host/cmd/eventhost
	@for p in $(PLUGINS); do \
		$(GO) build -o $(BIN)/plugins/eventhost-plugin-$$p ./plugins/$$p/cmd/eventhost-plugin-$$p || exit 1; \
	done
	@chmod go-w $(BIN) $(BIN)/plugins $(BIN)/plugins/* # the host refuses plugins others could change

# Every test, including the integration tests against a private redis-server
# and real plugin processes (they build their own binaries).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 9m ./...

# The fast inner loop: unit tests only.
test-short:
	$(GO) test -short ./...

# End-to-end throughput through eventhost vs the in-process reference, latency
# at a fixed rate and peak RSS, all in one run. COUNT=6 for benchstat.
bench: build
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -count $(COUNT) -timeout 20m ./host/bench/

demo: build
	./scripts/demo.sh

# Regenerates the committed gRPC code; needs protoc, protoc-gen-go and protoc-gen-go-grpc.
proto:
	protoc --proto_path=sdk/proto/pluginv1 \
		--go_out=sdk/proto/pluginv1 --go_opt=paths=source_relative \
		--go-grpc_out=sdk/proto/pluginv1 --go-grpc_opt=paths=source_relative \
		plugin.proto

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
