# The two commands of the README: `make run` and `make test`. Both install what is missing
# first (scripts/install-deps), so they work on a fresh Debian 12 machine.
#
#   make test               build with -Werror, run all tests; again under ASan+UBSan;
#                           then run each fuzz target for FUZZ_SECONDS (default 60)
#   make build              the product build only (build/bin/)
#   make unit               build and run the tests of the product build only (with the
#                           Debian package test, which needs root; NO_PACKAGE_TEST=1: without)
#   make asan               sanitizer build (build-asan/) and its unit tests
#   make fuzz               fuzz build (build-fuzz/, clang) and the fuzz run
#   make deb                the Debian packages in build-deb/ (checked by lintian)
#   make clean

FUZZ_SECONDS ?= 60
CMAKE_GENERATOR ?= Ninja
CTEST := ctest --output-on-failure --timeout 600

.PHONY: run test deps build unit asan fuzz deb clean

run: build
	scripts/dev-run

test: deps
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz

deps:
	scripts/install-deps

build: deps
	cmake -S . -B build -G "$(CMAKE_GENERATOR)" -DIOTSOCKET_WERROR=ON
	cmake --build build

# The package test (label package) needs root: NO_PACKAGE_TEST=1 leaves it out. It runs
# verbosely, so that its timings and the unit's security exposure are in the log.
unit: build
	$(CTEST) --test-dir build -LE package
	$(if $(NO_PACKAGE_TEST),@echo "unit: the package test is left out (NO_PACKAGE_TEST)",$(CTEST) --test-dir build -L package -V)

asan: deps
	cmake -S . -B build-asan -G "$(CMAKE_GENERATOR)" -DIOTSOCKET_WERROR=ON \
	  -DIOTSOCKET_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan
	$(CTEST) --test-dir build-asan -L "unit|e2e"

fuzz: deps
	cmake -S . -B build-fuzz -G "$(CMAKE_GENERATOR)" -DCMAKE_CXX_COMPILER=clang++ \
	  -DIOTSOCKET_FUZZ=ON -DBUILD_TESTING=OFF
	cmake --build build-fuzz
	scripts/run-fuzzers build-fuzz $(FUZZ_SECONDS)

deb: deps
	scripts/build-deb build-deb

clean:
	rm -rf build build-asan build-fuzz build-deb
