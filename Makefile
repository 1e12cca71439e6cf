# The README's two commands are scripts/run and scripts/test: they install what is missing
# (make and the compiler too) and then call `make run` and `make test`. Every target here
# installs what it needs first as well (scripts/install-deps), so on a machine that has make:
#
#   make run        build what the dev server needs (not the tests) and start it under ./var/
#   make test       what CI checks, each stage timed: the product build (warnings are errors),
#                   every unit and e2e test once under ASan+UBSan, the installed client library
#                   and the Debian packages (root; NO_PACKAGE_TEST=1 leaves them out), fuzzing
#   make build      the product build only (build/bin/: the server, the commands, the bench)
#   make unit       everything in build/ (with the tests) and its unit and e2e tests: the quick
#                   loop of a developer (optimised, no sanitizers)
#   make asan       the sanitizer build (build-asan/) and its unit and e2e tests
#   make installed  the client library installed with CMake, the memory fault test (it needs
#                   glibc's allocator, not a sanitizer's) and the Debian package test
#   make fuzz       the fuzz build (build-fuzz/, clang) and the fuzz run
#   make deb        the Debian packages in build-deb/ (checked by lintian)
#   make clean

FUZZ_SECONDS ?= 60
# Most e2e tests wait on timers and sockets, so more run at once than there are cores.
TEST_JOBS ?= 4
CMAKE_GENERATOR ?= Ninja
CTEST := ctest --output-on-failure --timeout 600
CONFIGURE := cmake -S . -G "$(CMAKE_GENERATOR)" -DIOTSOCKET_WERROR=ON
# $(call stage,TARGET): one stage of `make test`, with the time it took.
stage = @started=$$(date +%s); $(MAKE) --no-print-directory $(1) && \
	echo "make test: $(1) passed in $$(($$(date +%s) - started)) s"

.PHONY: run test deps deps-run build unit asan installed fuzz deb clean

run: deps-run
	$(CONFIGURE) -B build
	cmake --build build --target run_programs
	scripts/dev-run

# The unit and e2e tests run once, under the sanitizers (they catch what the optimised build
# would, and more); the optimised build is what the package and install tests check. So the
# tests' own code is compiled here at -O0 only: a warning that only -O2 gives in a test
# (rare) shows in `make unit`, not here.
test: deps
	$(call stage,build)
	$(call stage,asan)
	$(call stage,installed)
	$(call stage,fuzz)

deps:
	scripts/install-deps test

deps-run:
	scripts/install-deps run

build: deps
	$(CONFIGURE) -B build
	cmake --build build --target product

unit: deps
	$(CONFIGURE) -B build
	cmake --build build
	$(CTEST) --test-dir build -j $(TEST_JOBS) -L "unit|e2e"

asan: deps
	$(CONFIGURE) -B build-asan -DIOTSOCKET_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan
	$(CTEST) --test-dir build-asan -j $(TEST_JOBS) -L "unit|e2e"

# The package test needs root: NO_PACKAGE_TEST=1 leaves it out. It runs verbosely, so that
# its timings and the unit's security exposure are in the log.
installed: build
	cmake --build build --target memory_fault_test
	$(CTEST) --test-dir build -L "install|release"
	$(if $(NO_PACKAGE_TEST),@echo "installed: the package test is left out (NO_PACKAGE_TEST)",$(CTEST) --test-dir build -L package -V)

fuzz: deps
	cmake -S . -B build-fuzz -G "$(CMAKE_GENERATOR)" -DCMAKE_CXX_COMPILER=clang++ \
	  -DIOTSOCKET_FUZZ=ON -DBUILD_TESTING=OFF
	cmake --build build-fuzz
	scripts/run-fuzzers build-fuzz $(FUZZ_SECONDS)

deb: deps
	scripts/build-deb build-deb

clean:
	rm -rf build build-asan build-fuzz build-deb
