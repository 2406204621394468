# Thin wrapper over CMake. `make run` and `make test` are the whole set-up
# on a fresh Debian 12 machine (see README.md).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
APP ?= examples/hello/app.lua

.PHONY: all deps build asan run test test-quick clean

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

test: build asan
	@scripts/run-tests

test-quick: build
	@SKIP_ASAN=1 scripts/run-tests

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
