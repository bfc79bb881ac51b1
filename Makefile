# eventhost. `make demo` and `make test` are the quick start.
GO      ?= go
BIN     := bin
PLUGINS := sales-histogram events-summary customer-invoices tutorial-metrics
BENCH   ?= .
COUNT   ?= 1

# What `eventhost version` and eventhost_build_info report; a plain
# `go build` falls back to what the toolchain records (host/version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/eventhost/eventhost/host/version.version=$(VERSION) \
	-X github.com/eventhost/eventhost/host/version.commit=$(COMMIT)

# `make install` layout; DESTDIR is prepended to every path (for packaging).
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
PLUGINDIR   ?= $(PREFIX)/lib/eventhost/plugins
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
CONFDIR     ?= /etc/eventhost
# The deploy/ files name the default paths; this rewrites them for the above.
SUBST = sed -e 's|/usr/local/bin/eventhost|$(BINDIR)/eventhost|g' \
	-e 's|/usr/local/lib/eventhost/plugins|$(PLUGINDIR)|g' \
	-e 's|/etc/eventhost|$(CONFDIR)|g'

.PHONY: all build test test-short bench fuzz demo proto proto-python vet fmt clean install uninstall

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/eventhost ./host/cmd/eventhost
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

# Long runs of the native fuzz targets, one after the other (make test runs
# only their seed corpora). Add a target as one more "package:FuzzName" word.
# FUZZFLAGS passes more flags, e.g. FUZZFLAGS=-parallel=1 on a shared box.
# Every target runs even when one fails. Go before 1.27 may end a run with a
# bare "context deadline exceeded" at the -fuzztime boundary on a loaded
# machine (go.dev/issue/75804): without a failing input written, that is
# reported as a flake, not a failure.
FUZZTIME  ?= 1m
FUZZFLAGS ?=
FUZZ_TARGETS := \
	./host/orders:FuzzParse \
	./host/config:FuzzParse \
	./host/policy:FuzzCheck \
	./sdk:FuzzUnpackEffects \
	./sdk:FuzzUnpackOrders \
	./sdk:FuzzResultsFromProto

fuzz:
	@failed=""; log=$$(mktemp); \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg >$$log 2>&1; rc=$$?; \
		grep -v '^fuzz: elapsed' $$log; grep '^fuzz: elapsed' $$log | tail -1; \
		if [ $$rc -ne 0 ]; then \
			if grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
				echo "== $$name: deadline flake at the end of the run, no failing input (go.dev/issue/75804)"; \
			else failed="$$failed $$t"; fi; \
		fi; \
	done; rm -f $$log; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed"; exit 1; fi

demo: build
	./scripts/demo.sh

# Regenerates the committed gRPC code; needs protoc, protoc-gen-go and protoc-gen-go-grpc.
proto:
	protoc --proto_path=sdk/proto/pluginv1 \
		--go_out=sdk/proto/pluginv1 --go_opt=paths=source_relative \
		--go-grpc_out=sdk/proto/pluginv1 --go-grpc_opt=paths=source_relative \
		plugin.proto

# Regenerates examples/python-plugin's gRPC stubs (committed); needs Debian's
# python3-grpc-tools.
proto-python:
	/usr/bin/python3 -m grpc_tools.protoc --proto_path=sdk/proto/pluginv1 \
		--python_out=examples/python-plugin --grpc_python_out=examples/python-plugin plugin.proto

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

# Binary, plugins, systemd unit and sysusers.d entry; the config and the
# environment file only when they do not exist yet (they are the admin's).
# It does not build: `make build && sudo make install` builds as you, not as
# root (whose PATH may lack go). host/e2e TestSystemdInstall checks the
# layout, the modes and the unit.
install:
	@for f in $(BIN)/eventhost $(addprefix $(BIN)/plugins/eventhost-plugin-,$(PLUGINS)); do \
		[ -x $$f ] || { echo "$$f is missing: run make build first" >&2; exit 1; }; \
	done
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(BIN)/eventhost $(DESTDIR)$(BINDIR)/eventhost
	install -m 0755 $(addprefix $(BIN)/plugins/eventhost-plugin-,$(PLUGINS)) $(DESTDIR)$(PLUGINDIR)/
	$(SUBST) deploy/systemd/eventhost.service > $(DESTDIR)$(UNITDIR)/eventhost.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/eventhost.service.tmp
	mv $(DESTDIR)$(UNITDIR)/eventhost.service.tmp $(DESTDIR)$(UNITDIR)/eventhost.service
	install -m 0644 deploy/systemd/eventhost.sysusers $(DESTDIR)$(SYSUSERSDIR)/eventhost.conf
	@if [ -e $(DESTDIR)$(CONFDIR)/config.hcl ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/config.hcl (the new default is deploy/config.hcl)"; \
	else \
		$(SUBST) deploy/config.hcl > $(DESTDIR)$(CONFDIR)/config.hcl.tmp && \
		chmod 0644 $(DESTDIR)$(CONFDIR)/config.hcl.tmp && \
		mv $(DESTDIR)$(CONFDIR)/config.hcl.tmp $(DESTDIR)$(CONFDIR)/config.hcl && \
		echo "installed $(DESTDIR)$(CONFDIR)/config.hcl"; \
	fi
	@if [ -e $(DESTDIR)$(CONFDIR)/eventhost.env ]; then \
		echo "kept $(DESTDIR)$(CONFDIR)/eventhost.env"; \
	else \
		install -m 0600 deploy/systemd/eventhost.env $(DESTDIR)$(CONFDIR)/eventhost.env && \
		echo "installed $(DESTDIR)$(CONFDIR)/eventhost.env (mode 0600: put secrets here)"; \
	fi

# Removes what install put down, except the config and the environment file.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/eventhost $(DESTDIR)$(UNITDIR)/eventhost.service \
		$(DESTDIR)$(SYSUSERSDIR)/eventhost.conf \
		$(addprefix $(DESTDIR)$(PLUGINDIR)/eventhost-plugin-,$(PLUGINS))
	-rmdir $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/lib/eventhost
