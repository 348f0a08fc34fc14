# wsbroker - the two commands a newcomer needs:
#   make run    install what is missing, build, start the broker on 127.0.0.1:8080
#               (TLS=1: also wss:// on 127.0.0.1:8443 with the `make dev-cert` pair)
#   make test   install what is missing, build, run every test suite
# Everything else wraps CMake; build trees: build/ (normal), build-asan/,
# build-fuzz/ (clang + libFuzzer), build-release/ (bench).

SHELL := /bin/bash
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 30
# Short fuzz runs inside `make test` keep CI fast; `make fuzz` runs longer.
TEST_FUZZ_SECONDS ?= 10
WERROR ?= ON
HOST ?= 127.0.0.1
PORT ?= 8080
CMAKE_FLAGS ?=

# Debian 12 packages, by what needs them.
DEPS_BUILD := build-essential cmake pkg-config libuv1-dev libssl-dev libjansson-dev node-llhttp \
              libhiredis-dev zlib1g-dev
DEPS_TEST  := libcmocka-dev clang libclang-rt-14-dev python3 python3-websockets python3-pytest \
              valgrind nodejs npm chromium redis-server redis-tools python3-redis \
              openssl python3-cryptography nginx python3-pip python3-setuptools python3-wheel \
              mypy prometheus python3-yaml systemd python3-fastapi python3-uvicorn \
              python3-flask python3-django
DEPS_LINT  := clang-format clang-tidy cppcheck
# What `make run` and the commands of README.md's quick start and client
# sections need: curl, python3 -m websockets, Node (+ the npm dev packages),
# openssl (make dev-cert).
DEPS_RUN   := $(DEPS_BUILD) curl python3-websockets nodejs npm openssl
DEPS_NODE  := nodejs npm
# What the backends of examples/ import (make example NAME=…).
DEPS_EXAMPLES := python3-websockets python3-fastapi python3-uvicorn python3-flask python3-django
# Only for `make test-docker` (installed by that target, not by `make deps`).
DEPS_DOCKER := docker.io docker-compose debootstrap iptables

BIN := build/broker/wsbroker
# The self-signed pair of `make dev-cert` (README's TLS examples); build/ is
# ignored by git.
DEV_CERT_DIR ?= build/dev-cert

.PHONY: all deps deps-packages deps-build deps-test deps-lint deps-npm deps-run deps-node build run \
        dev-cert test test-unit test-integration test-docker test-docker-optional deps-docker asan \
        tsan fuzz format lint clean help install screenshots

all: build

help:
	@echo "make run [TLS=1] | example NAME=chat | screenshots | test | build | install [PREFIX=/usr/local DESTDIR=] | dev-cert | asan | fuzz [FUZZ_SECONDS=N] | test-docker | format | lint | deps | clean"

# Installs the missing Debian packages in one apt-get call (update once first).
# Not root: prints the exact command instead of failing half-way.
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || \
	  dpkg-query -W -f='$${Status} $${Provides}\n' 2>/dev/null | grep "install ok installed" | \
	    grep -qE "[ ,]$$p( |,|$$)" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing (this takes a few minutes)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
endef

# `deps` checks the build and test packages in one install_missing call, so a
# fresh machine runs `apt-get update` once, not once per list.
deps: deps-packages deps-npm
deps-packages:
	$(call install_missing,$(DEPS_BUILD) $(DEPS_TEST))
deps-build:
	$(call install_missing,$(DEPS_BUILD))
deps-test:
	$(call install_missing,$(DEPS_TEST))
deps-lint:
	$(call install_missing,$(DEPS_LINT))
deps-run:
	$(call install_missing,$(DEPS_RUN))
deps-node:
	$(call install_missing,$(DEPS_NODE))

# Dev dependencies of the JS client (ws for the README's Node example and the
# tests on Node < 22, playwright-core for the browser test, typescript for the
# package test) from the committed lock file; npm runs again only when the lock
# file changes.
NPM_STAMP := clients/js/node_modules/.package-lock.json
deps-npm: $(NPM_STAMP)
$(NPM_STAMP): clients/js/package-lock.json clients/js/package.json | deps-node
	@echo "installing the JS client's npm dev packages (ws, playwright-core, typescript) into clients/js/node_modules"
	@npm ci --prefix clients/js --no-audit --no-fund --loglevel=error --update-notifier=false >/dev/null
	@touch $@

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the programs, the C client
# library with headers and wsbroker-client.pc, the JS client, man pages, the
# example config and the systemd unit (cmake/WsbInstall.cmake). PREFIX is
# baked into the .pc file and the unit, so it configures build/ with it.
PREFIX ?= /usr/local
install: deps-build
	cmake -S . -B build -DWSB_WERROR=$(WERROR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build

build: deps-build
	cmake -S . -B build -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

# Quiet: builds only what it runs and what README.md's examples use (the
# broker, wsbroker-cli, the demo page's copy of the JS client); the compiler's
# output goes to build/make-run.log and is shown only when the build fails.
RUN_TARGETS := wsbroker wsbroker-cli wsbroker_js
RUN_TLS = $(if $(TLS),--tls-cert $(DEV_CERT_DIR)/cert.pem --tls-key $(DEV_CERT_DIR)/key.pem)
run: deps-run deps-npm $(if $(TLS),dev-cert)
	@cmake -S . -B build -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@echo "building $(RUN_TARGETS) (log: build/make-run.log)"
	@MAKEFLAGS=--no-print-directory cmake --build build -j $(JOBS) --target $(RUN_TARGETS) \
	  >build/make-run.log 2>&1 || { tail -n 40 build/make-run.log; echo "build failed: build/make-run.log"; exit 1; }
	@echo "wsbroker on http://$(HOST):$(PORT)/$(if $(TLS), and wss://$(HOST):8443/ws) (Ctrl-C stops it)"
	@echo "dev tokens for the demo page: tools/dev/dev_token.py NAME (development only)"
	@$(BIN) --config tools/dev/run.json --host $(HOST) --port $(PORT) --web-root web $(RUN_TLS)

# `make example NAME=chat [EXAMPLE_PORT=8090]`: one example of examples/ (its
# broker config + its backend, examples/run), after building the broker.
# The backends run on Debian's python3 with its python3-fastapi/-uvicorn.
NAME ?=
EXAMPLE_PORT ?= 8090
.PHONY: example
example: deps-run
	$(call install_missing,$(DEPS_EXAMPLES))
	@test -n "$(NAME)" || { echo "usage: make example NAME=<$$(ls -d examples/*/ | xargs -n1 basename | grep -v common | tr '\n' '|' | sed 's/|$$//')>"; exit 2; }
	@cmake -S . -B build -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@echo "building wsbroker (log: build/make-run.log)"
	@MAKEFLAGS=--no-print-directory cmake --build build -j $(JOBS) --target wsbroker \
	  >build/make-run.log 2>&1 || { tail -n 40 build/make-run.log; echo "build failed: build/make-run.log"; exit 1; }
	@examples/run $(NAME) --port $(EXAMPLE_PORT)

# `make screenshots`: runs the examples' Chromium tests (ctest label
# `example`) with WSBROKER_UPDATE_SCREENSHOTS=1, so each one also replaces
# its committed examples/<name>/screenshot.png (a plain test run saves them
# into build/examples/screenshots/ only and leaves the tree clean).
screenshots: deps
	$(call install_missing,$(DEPS_EXAMPLES))
	cmake -S . -B build -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)
	WSBROKER_UPDATE_SCREENSHOTS=1 ctest --test-dir build --output-on-failure -L example

# A self-signed certificate and key for 127.0.0.1 and localhost (30 days),
# for the README's TLS examples: `make run TLS=1` serves it on 8443 and
# clients trust it with --cafile build/dev-cert/cert.pem. Made once.
dev-cert: $(DEV_CERT_DIR)/cert.pem
$(DEV_CERT_DIR)/cert.pem:
	@mkdir -p $(DEV_CERT_DIR)
	@openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	  -keyout $(DEV_CERT_DIR)/key.pem -out $(DEV_CERT_DIR)/cert.pem -subj /CN=localhost \
	  -addext "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" 2>/dev/null
	@echo "self-signed certificate for 127.0.0.1, ::1 and localhost: $(DEV_CERT_DIR)/cert.pem, $(DEV_CERT_DIR)/key.pem"

# The full suite: unit + integration (1 and 2 workers) + conformance +
# federation + the rest on the normal build, unit + integration (4 workers) +
# federation on the ASan/UBSan build, TSan, then each fuzzer briefly, then the
# Docker test. Each integration variant runs once under the build that adds
# the most: 4 workers (more workers than cores, every cross-worker path) under
# the sanitizers, 1 and 2 workers on the normal build. ctest runs TEST_JOBS
# suites at a time: they mostly wait on sockets, so two share two cores well
# (every suite is written to pass on a loaded machine). TEST_JOBS=1 for one at
# a time.
TEST_JOBS ?= $(JOBS)
TEST_EXCLUDE ?= -E '^integration\.w4$$'
test: deps
	cmake -S . -B build -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)
	ctest --test-dir build --output-on-failure -j $(TEST_JOBS) -LE fuzz $(TEST_EXCLUDE)
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory tsan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(MAKE) --no-print-directory test-docker-optional

# The Dockerfile and docker-compose.yml for real: starts its own dockerd
# (state in build-docker/, stopped by PID), bootstraps debian:bookworm-slim
# with debootstrap when it cannot be pulled, builds the images, runs the
# compose cluster on 127.0.0.1 and the through-nginx checks, tears it down.
test-docker: deps-test deps-docker
	/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/docker
deps-docker:
	$(call install_missing,$(DEPS_DOCKER))

# `make test`'s Docker step: test-docker where Docker can be installed (root,
# apt) and started; otherwise it says why it is skipped (the test itself
# skips, with dockerd's error, when dockerd cannot run on this machine).
# SKIP_DOCKER=1 skips it.
test-docker-optional: deps-test
	@if [ -n "$(SKIP_DOCKER)" ]; then \
	  echo "test-docker: skipped (SKIP_DOCKER is set)"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	  echo "test-docker: skipped: installing Docker and starting dockerd need root;"; \
	  echo "             run 'sudo make test-docker' to test the Dockerfile and docker-compose.yml"; \
	elif ! $(MAKE) --no-print-directory deps-docker; then \
	  echo "test-docker: skipped: the Docker packages ($(DEPS_DOCKER)) could not be installed"; \
	else \
	  WSB_DOCKER_OPTIONAL=1 /usr/bin/python3 -m pytest -q -s -rs -p no:cacheprovider tests/docker; \
	fi

# Under ASan the integration suite runs with 4 workers: every path of the 1-
# and 2-worker runs plus the cross-worker hand-offs. The 1- and 2-worker runs
# (about 4 min each under ASan) run on the normal build only.
# `make asan ASAN_EXCLUDE=` runs them here too.
ASAN_EXCLUDE ?= -E '^integration(\.w1)?$$'
asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWSB_WERROR=$(WERROR) \
	  -DWSB_SANITIZE=address,undefined $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir build-asan --output-on-failure -j $(TEST_JOBS) -L 'unit|integration|federation' $(ASAN_EXCLUDE)

# Every libFuzzer target (tests/CMakeLists.txt registers each under the ctest
# label fuzz; one missing here is not built, so its ctest entry fails loudly).
# Only these are built in build-fuzz; each runs FUZZ_SECONDS.
FUZZERS := ws_frame http message topic jwt tls resp deflate json_scan

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSB_FUZZ=ON \
	  -DWSB_WERROR=$(WERROR) -DWSB_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS) >/dev/null
	cmake --build build-fuzz -j $(JOBS) $(addprefix --target fuzz_,$(FUZZERS))
	ctest --test-dir build-fuzz --output-on-failure -j $(TEST_JOBS) -L fuzz

# ThreadSanitizer build of the broker: the integration suite with 4 workers,
# so every cross-worker path (inboxes, shared frames, sequence table, metrics)
# runs under it, and the inbox queue's own multi-producer unit test. One
# suite at a time: a broker under TSan is 5-15 times slower, and two such
# suites side by side would leave the tests' timeouts little room.
tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DWSB_WERROR=$(WERROR) \
	  -DWSB_SANITIZE=thread $(CMAKE_FLAGS) >/dev/null
	cmake --build build-tsan -j $(JOBS) --target wsbroker wsbroker-cli test_xqueue shim_swap_dir
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --test-dir build-tsan --output-on-failure -R '^(unit\.xqueue|integration\.w4|federation)$$'

# Release build of the broker and wsbench, then every scenario in
# bench/scenarios against brokers it starts itself, and one results table.
.PHONY: bench
bench: deps-build
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
	  -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	cmake --build build-release -j $(JOBS) --target wsbroker wsbench
	bench/run.sh

# wsbroker next to nats-server, issue 17's scenarios side by side
# (bench/peer.sh; it installs the Debian nats-server when missing, as the
# reqrep scenario does): one summary table.
.PHONY: bench-peer
bench-peer: deps-build
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
	  -DWSB_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	cmake --build build-release -j $(JOBS) --target wsbroker wsbench
	bench/peer.sh

SOURCES = $(shell git ls-files -co --exclude-standard '*.c' '*.h' 2>/dev/null)

format: deps-lint
	clang-format -i $(SOURCES)

lint: deps-lint build
	/usr/bin/python3 tools/check_layers.py broker
	clang-format --dry-run -Werror $(SOURCES)
	@# One file per clang-tidy run: clang-tidy 14 reports false va_list errors
	@# when several files share a run.
	printf '%s\n' $(filter %.c,$(SOURCES)) | xargs -P $(JOBS) -n 1 clang-tidy -p build --quiet
	cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
	  --suppress=missingIncludeSystem -q -I protocol/include -I broker $(filter %.c,$(SOURCES))

clean:
	rm -rf build build-asan build-tsan build-fuzz build-release build-docker
