# gpuhub: the two set-up commands are `make run` and `make test` (`make demo` for simulated GPUs).
SHELL := /bin/bash
# Debian's python has pytest, requests and websocket-client; a pyenv python may not.
PYTHON := /usr/bin/python3
FUZZ_SECONDS ?= 20

.PHONY: run demo test deps build build-debug unit e2e fuzz bench format clean

run: deps build
	scripts/run-local

# `make run` plus three simulated GPU machines (no GPU needed).
demo: deps build
	scripts/run-demo

test: deps build-debug
	scripts/run-tests

deps:
	scripts/install-deps

build:
	cmake --preset release >/dev/null
	cmake --build --preset release

build-debug:
	cmake --preset debug >/dev/null
	cmake --build --preset debug

unit: build-debug
	ctest --preset debug

e2e: build-debug
	$(PYTHON) -m pytest tests/e2e

fuzz: deps
	scripts/run-fuzz $(FUZZ_SECONDS)

bench: deps build
	bench/run-all

format:
	find src apps tests bench -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

clean:
	rm -rf build
