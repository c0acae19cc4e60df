# kubetrain — `make demo` is the Quick start (README.md); `make test` runs the whole suite.
BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo bench format format-check tidy clean

all: build

deps:
	scripts/setup-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build format-check
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)

demo: build
	scripts/demo.sh $(BUILD_DIR)

bench: build
	scripts/bench.sh $(BUILD_DIR)

format:
	git ls-files '*.cc' '*.h' '*.cu' | xargs clang-format -i

# clang-format on every tracked C++ file, failing on a diff (part of `make test`).
format-check: deps
	scripts/format-check.sh

# clang-tidy with .clang-tidy over every compiled source (not part of `make test`: ~20 min on 2 cores).
tidy: build
	scripts/tidy.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
