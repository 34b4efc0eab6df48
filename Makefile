# headroom's front door. `make run` and `make test` work on a fresh machine: each bootstraps
# (Debian packages, the llama.cpp engine, cached in ~/.cache/headroom) before it builds.
#
#   make run         build, make the demo model if absent, stream a generation from it with the
#                    CLI, then serve it with headroomd on PORT (default 11435) until Ctrl-C
#   make test        build (warnings are errors) and run every test under ctest
#   make test-asan   the same with AddressSanitizer + UBSan, in build-asan/
#   make test-tsan   ThreadSanitizer over the threaded tests, in build-tsan/ (CI: a subset)
#   make fuzz        the libFuzzer targets (tests/fuzz, clang) in build-fuzz/, each run for
#                    FUZZ_RUNS executions (default 1000000), or FUZZ_SECONDS each when set
#   make bench       decode speed of `headroom run` against llama-bench on the 1b model
#   make bench-server  headroomd against llama-server: decode, first token, 50 slow readers
#   make bench-concurrency  headroomd against llama-server at 1, 2, 4, 8 streams (bench/results/)
#   make install     install into PREFIX (default /usr/local)

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_RUNS  ?= 1000000
FUZZ_SECONDS ?=
PREFIX     ?= /usr/local
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
DEMO_MODEL := $(BUILD)/models/demo.gguf
PROMPT     ?= Once upon a time
PORT       ?= 11435

.PHONY: all bootstrap configure build run test test-asan test-tsan fuzz bench bench-server bench-concurrency install clean

all: build

# Bootstrap every time: it is quick when everything is there (about a second) and it is the
# one place that knows where the engine lives.
bootstrap:
	@mkdir -p $(BUILD)
	@scripts/bootstrap > $(BUILD)/.engine-prefix.new && mv $(BUILD)/.engine-prefix.new $(BUILD)/.engine-prefix
	@scripts/bootstrap --source > $(BUILD)/.engine-source

define configure_into
	cmake -S . -B $(1) $(GENERATOR) -DHEADROOM_WERROR=ON \
	    -DHEADROOM_ENGINE_PREFIX="$$(cat $(BUILD)/.engine-prefix)" \
	    -DHEADROOM_ENGINE_SOURCE_DIR="$$(cat $(BUILD)/.engine-source)" $(2) >/dev/null
endef

configure: bootstrap
	@$(call configure_into,$(BUILD),)

build: configure
	@cmake --build $(BUILD) -j $$(nproc)

$(DEMO_MODEL): build
	@mkdir -p $(dir $@)
	@test -f $@ || $(BUILD)/tools/mkmodel/headroom-mkmodel --preset demo -o $@

run: build $(DEMO_MODEL)
	$(BUILD)/tools/headroom/headroom run $(DEMO_MODEL) "$(PROMPT)" --max-tokens 64
	@echo
	@echo "Starting headroomd on the demo model (Ctrl-C stops it)."
	@echo "  dashboard:  http://127.0.0.1:$(PORT)/"
	@echo "  try:        curl -N http://127.0.0.1:$(PORT)/v1/completions -d '{\"model\":\"demo\",\"prompt\":\"Once upon a time\",\"max_tokens\":32,\"stream\":true}'"
	@echo "              curl http://127.0.0.1:$(PORT)/api/memory"
	$(BUILD)/tools/headroomd/headroomd --model $(DEMO_MODEL) --port $(PORT)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j 2

test-asan: bootstrap
	@$(call configure_into,$(ASAN_BUILD),-DHEADROOM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
	@cmake --build $(ASAN_BUILD) -j $$(nproc)
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2

# ThreadSanitizer over the tests that exercise headroom's threads. llama.cpp and ggml are not
# instrumented, so their compute threads are suppressed (tests/tsan.supp), and the cgroup tests
# are left out (TSan's shadow memory is charged to their small cgroups). TSAN_TESTS (a ctest -R
# pattern) picks a subset: CI runs the threaded ones (.ci/run), a person all of them.
TSAN_TESTS ?=
test-tsan: bootstrap
	@$(call configure_into,$(TSAN_BUILD),-DHEADROOM_SANITIZE_THREAD=ON -DCMAKE_BUILD_TYPE=Debug -DHEADROOM_BUILD_BENCH=OFF)
	@cmake --build $(TSAN_BUILD) -j $$(nproc)
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	    ctest --test-dir $(TSAN_BUILD) --output-on-failure -j 2 --timeout 900 \
	    $(if $(TSAN_TESTS),-R '$(TSAN_TESTS)') -E 'pressure_live|lifecycle_live|guard_live|scaleout|install'

# libFuzzer needs clang (Debian: apt-get install clang); the whole build is instrumented.
fuzz: bootstrap
	@command -v clang >/dev/null || { echo "make fuzz: needs clang (apt-get install clang)"; exit 1; }
	@CC=clang CXX=clang++ $(call configure_into,$(FUZZ_BUILD),-DHEADROOM_FUZZ=ON -DHEADROOM_BUILD_TESTS=OFF -DHEADROOM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	@cmake --build $(FUZZ_BUILD) -j $$(nproc) --target fuzz_targets headroom-mkmodel
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_RUNS) $(FUZZ_SECONDS)

bench: build
	bench/decode_speed.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

bench-server: build
	bench/server_vs_llama_server.sh $(BUILD)

bench-concurrency: build
	bench/concurrency.sh $(BUILD)
