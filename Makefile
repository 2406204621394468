# Thin wrapper over CMake. `make run` and `make test` are the whole set-up
# on a fresh Debian 12 machine (see README.md).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
APP ?= examples/hello/app.lua
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build asan run test test-quick clean fuzz fuzz-build install deb

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTYCHO_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	$(BUILD)/tycho run $(APP)

# `make install` (PREFIX, default /usr/local; DESTDIR for staging) and
# `make deb`, a Debian package built by cpack into $(BUILD) (docs/install.md).
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

deb: build
	@cd $(BUILD) && cpack -G DEB >/dev/null && ls -1 "$$PWD"/tycho_*.deb

# libFuzzer targets (fuzz/), clang with ASan+UBSan.
fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTYCHO_SANITIZE=ON -DTYCHO_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_conn fuzz_router fuzz_query fuzz_multipart

# Runs each fuzz target for FUZZ_SECONDS.
fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz $(FUZZ_SECONDS)

test: build asan fuzz-build
	@scripts/run-tests

test-quick: build
	@SKIP_ASAN=1 SKIP_FUZZ=1 scripts/run-tests

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
