# convscope - build, test, run, bench.
# Layout: core/ (network, no HTTP) -> api/ (HTTP <-> core) -> server/ (process) -> cli/.
# Every tests/core/test_*.c and tests/api/test_*.c is one test binary; tests/run.sh
# adds up their results into the one "N passed, N failed" line.

CC      ?= gcc
PKGS    := libpng jansson libmicrohttpd hdf5 zlib libprotobuf-c libzip
# Selects instead of branches in the elementwise loops need -fno-trapping-math to vectorise.
CFLAGS  ?= -O3 -g
# XCFLAGS adds to these flags (make CFLAGS=... would replace them): sanitizers, -Werror.
XCFLAGS ?=
CFLAGS  += -fno-trapping-math -fno-math-errno -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP -pthread -Icore -Iapi -Iserver -I$(B)/gen $(XCFLAGS)
LDLIBS  := -lopenblas -ldnnl -lgomp -ldeflate -ljpeg -lm -pthread
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

B := build
# ONNX's own schema (Debian's libonnx-dev); protoc-c turns it into C at build time.
ONNX_PROTO_DIR ?= /usr/include/onnx
ONNX_GEN := $(B)/gen/onnx.pb-c.c $(B)/gen/onnx.pb-c.h
CORE_SRC := $(wildcard core/*.c core/layers/*.c core/explain/*.c)
HTTP_SRC := $(wildcard api/*.c server/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o) $(B)/gen/onnx.pb-c.o
HTTP_OBJ := $(HTTP_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(patsubst %.c,$(B)/%.o,$(wildcard cli/*.c))
CORE_TESTS := $(patsubst tests/core/%.c,$(B)/tests/%,$(wildcard tests/core/test_*.c))
API_TESTS  := $(patsubst tests/api/%.c,$(B)/tests/api_%,$(wildcard tests/api/test_*.c))
# Resource attacks on a real server over loopback (slow headers and bodies, overload, framing,
# decompression bombs, many large images).
ATTACK_TESTS := $(patsubst tests/attack/%.c,$(B)/tests/attack_%,$(wildcard tests/attack/test_*.c))
BENCHES    := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
WEB_TESTS  := $(wildcard tests/web/run.sh tests/web/insight.sh)
# The committed ONNX test models against ONNX Runtime (tests/models/make_models.py wrote them),
# and models convscope exports as ONNX run by ONNX Runtime.
MODEL_TESTS := $(wildcard tests/models/run.sh tests/models/export.sh)
DEPLOY_TESTS := tests/deploy/scaleout_test.sh tests/deploy/validate.sh
# ONNX's own operator tests (Debian's libonnx-testdata) through the importer.
CONFORMANCE := $(B)/tests/onnx_conformance
# openapi.yaml against the OpenAPI specification (swagger-parser, from npm).
OPENAPI_TESTS := tests/openapi/run.sh

MODEL := models/fmnist.csm
PORT  ?= 8080
# Debian's python3, where apt installs python3-torch, even when another python3 comes first on PATH.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
# Full-size torchvision nets with random weights for the benchmarks (tens of MB, VGG16's
# 553 MB; not committed), and the notebook network of models/ exported for ONNX Runtime.
BENCH_MODELS := $(B)/bench-models/resnet18.onnx $(B)/bench-models/mobilenet_v2.onnx $(B)/bench-models/vgg16.onnx
FMNIST_ONNX := $(B)/bench-models/fmnist.onnx
ORT_NODE := tests/models/node_modules/onnxruntime-node/package.json

.PHONY: all deps test test-attack check run bench bench-ort model clean docker-test fresh-test fuzz fuzz-onnx fuzz-keras
all: deps $(B)/convscope

deps:
	@scripts/deps.sh build

$(B)/%.o: %.c | $(B)/gen/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

# One protoc-c run writes both files; the header is the target the others wait for.
$(B)/gen/onnx.pb-c.h: $(ONNX_PROTO_DIR)/onnx.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=$(ONNX_PROTO_DIR) --c_out=$(B)/gen $(ONNX_PROTO_DIR)/onnx.proto
$(B)/gen/onnx.pb-c.c: $(B)/gen/onnx.pb-c.h
$(B)/gen/onnx.pb-c.o: $(B)/gen/onnx.pb-c.c
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(B)/libcore.a: $(CORE_OBJ)
	ar rcs $@ $^
$(B)/libhttp.a: $(HTTP_OBJ)
	ar rcs $@ $^

$(B)/convscope: $(CLI_OBJ) $(B)/libhttp.a $(B)/libcore.a
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(B)/tests/%: tests/core/%.c $(B)/libcore.a tests/test.h $(wildcard tests/core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -DCS_TEST_BIN='"$(B)/convscope"' -o $@ $< $(B)/libcore.a $(PKG_LIBS) $(LDLIBS)

$(CONFORMANCE): tests/onnx_conformance/conformance.c $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -o $@ $< $(B)/libcore.a $(PKG_LIBS) $(LDLIBS)

$(B)/tests/api_%: tests/api/%.c $(wildcard tests/api/*.h) $(B)/libhttp.a $(B)/libcore.a $(B)/convscope
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -DCS_TEST_BIN='"$(B)/convscope"' -o $@ $< $(B)/libhttp.a $(B)/libcore.a $(PKG_LIBS) -lcurl $(LDLIBS) $(TEST_LDFLAGS)
# The allocation-failure test wraps the allocator and the dispatcher at link time.
$(B)/tests/api_test_alloc_fail: TEST_LDFLAGS = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=cs_api_dispatch

$(B)/tests/attack_%: tests/attack/%.c tests/attack/attack.h $(wildcard tests/api/*.h) $(B)/libhttp.a $(B)/libcore.a $(B)/convscope
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Itests -Itests/api -o $@ $< $(B)/libhttp.a $(B)/libcore.a $(PKG_LIBS) -lcurl $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $< $(B)/libcore.a $(PKG_LIBS) $(LDLIBS)

test: 
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(B)/convscope $(CORE_TESTS) $(API_TESTS) $(CONFORMANCE) $(ATTACK_TESTS)
	@tests/run.sh $(CORE_TESTS) $(CONFORMANCE) $(API_TESTS) $(ATTACK_TESTS) $(MODEL_TESTS) $(WEB_TESTS) $(DEPLOY_TESTS) $(OPENAPI_TESTS)

# The attack tests alone (they are part of `make test`).
test-attack:
	@$(MAKE) --no-print-directory $(B)/convscope $(ATTACK_TESTS)
	@tests/run.sh $(ATTACK_TESTS)

# The C and API tests again under AddressSanitizer + UndefinedBehaviorSanitizer (every
# report fatal, leaks included), then the tests where threads meet under ThreadSanitizer;
# each in a build of its own (build/check, build/tsan) with -Werror.
# Text cut short by snprintf is on purpose here (names and messages); -O1 inlines
# differently from -O3 and would warn about it.
CHECK_WARN := -Werror -Wno-format-truncation
CHECK_ASAN := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all $(CHECK_WARN)
CHECK_TSAN := -O1 -fsanitize=thread $(CHECK_WARN)
TSAN_TESTS := api_test_concurrency api_test_watch api_test_job_stop api_test_limits
ASAN_RUN := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_RUN := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
check:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory B=build/check XCFLAGS="$(CHECK_ASAN)" build/check/convscope \
	    $(patsubst $(B)/%,build/check/%,$(CORE_TESTS) $(API_TESTS))
	@$(ASAN_RUN) tests/run.sh $(patsubst $(B)/%,build/check/%,$(CORE_TESTS) $(API_TESTS))
	@$(MAKE) --no-print-directory B=build/tsan XCFLAGS="$(CHECK_TSAN)" build/tsan/convscope \
	    $(addprefix build/tsan/tests/,$(TSAN_TESTS))
	@$(TSAN_RUN) tests/run.sh $(addprefix build/tsan/tests/,$(TSAN_TESTS))

run: all
	$(B)/convscope serve --listen 127.0.0.1:$(PORT) --models models

# Train the bundled model with the notebook's recipe (20 epochs, batch 128).
model: all
	$(B)/convscope train --epochs 20 --batch 128 --seed 1 --out $(MODEL)

bench: all $(BENCHES)
	@scripts/deps.sh bench
	@for b in $(BENCHES); do $$b || exit 1; done
	bench/http.sh $(B)/convscope
	bench/vgg16_server.sh $(B)/convscope
	@$(MAKE) --no-print-directory bench-ort

# convscope against ONNX Runtime on the same models (after a check that both compute what
# PyTorch does on them), the two taking turns, with the ratios and the fractions of the
# machine's FMA peak; then convscope's plain kernels against its fast paths, and Grad-CAM.
BM := $(B)/bench-models
bench-ort: $(BENCH_MODELS) $(FMNIST_ONNX) $(ORT_NODE) $(B)/bench/onnx_models
	@node tests/models/ort_reference.mjs --models $(BM) --quiet
	node bench/ort_compare.mjs --convscope $(B)/bench/onnx_models --rounds 5 \
	    --case $(BM)/vgg16.onnx,threads=2 --case $(BM)/vgg16.onnx,threads=2,precision=bf16 \
	    --case $(BM)/resnet18.onnx,threads=1 --case $(BM)/resnet18.onnx,threads=2 \
	    --case $(BM)/mobilenet_v2.onnx,threads=1 --case $(BM)/mobilenet_v2.onnx,threads=2 \
	    --case $(FMNIST_ONNX),model=$(BM)/fmnist.csm,threads=1 \
	    --case $(FMNIST_ONNX),model=$(BM)/fmnist.csm,batch=128,threads=2 \
	    --case $(FMNIST_ONNX),model=$(BM)/fmnist.csm,batch=128,threads=2,precision=bf16
	$(B)/bench/onnx_models --modes plain,auto $(BENCH_MODELS) $(BM)/fmnist.csm

$(BENCH_MODELS) &: bench/export_torchvision.py tests/models/make_models.py
	$(PYTHON) bench/export_torchvision.py --out $(BM)

$(FMNIST_ONNX): bench/export_fmnist.py $(MODEL)
	$(PYTHON) bench/export_fmnist.py --model $(MODEL) --out $(BM)

# The parity tests install it the same way (tests/models/run.sh).
$(ORT_NODE):
	tests/npm_ci.sh tests/models --ignore-scripts

# Builds the Docker image (needs root: starts its own dockerd) and checks it runs
# read-only with no capabilities: health, predictions, Grad-CAM, a training job; then
# brings docker/compose.yaml up (Debian's docker-compose, nginx built from the same base)
# and runs the scale-out checks through it.
docker-test: all
	@tests/deploy/docker_test.sh

# Runs `make test` on a clean clone of HEAD in a bare Debian 12 container (debootstrap;
# only git, make and ca-certificates installed), as a fresh machine would (needs root:
# starts its own dockerd). The container's output goes to build/fresh-machine.log.
fresh-test:
	@tests/deploy/fresh_machine.sh

# libFuzzer on the ONNX reader (clang, AddressSanitizer), seeded with the committed
# models; FUZZ_SECONDS bounds the run. New inputs it finds stay in build/fuzz/corpus.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_SRC := tests/fuzz/fuzz_onnx_reader.c core/onnx_reader.c core/onnx_fold.c core/error.c
$(B)/fuzz/fuzz_onnx_reader: $(FUZZ_SRC) core/onnx_reader.h core/onnx_reader_priv.h $(ONNX_GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -Icore -I$(B)/gen -o $@ $(FUZZ_SRC) $(B)/gen/onnx.pb-c.c -lprotobuf-c -lm
# The whole import (reader, translation, a forward pass), over the whole core.
FUZZ_CORE := $(filter-out core/onnx_reader.c core/onnx_fold.c core/error.c,$(CORE_SRC))
$(B)/fuzz/fuzz_onnx_import: tests/fuzz/fuzz_onnx_import.c $(FUZZ_SRC) $(FUZZ_CORE) $(ONNX_GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -pthread -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Icore -I$(B)/gen $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_onnx_import.c \
	    $(filter-out tests/fuzz/fuzz_onnx_reader.c,$(FUZZ_SRC)) $(FUZZ_CORE) $(B)/gen/onnx.pb-c.c $(PKG_LIBS) $(LDLIBS)

# Every parser of untrusted bytes under libFuzzer (tests/fuzz/, seeds in tests/fuzz/corpus):
# image decoding, multipart uploads and query arguments through the whole service, the
# training-job JSON, the model file, IDX files, Keras HDF5 weights, and the ONNX and
# Keras-model harnesses around. Each runs FUZZ_SHORT seconds (CI); FUZZ_SHORT=600 for a
# longer look.
# The tree is built once with the fuzzer's instrumentation in build/fuzz-lib.
FUZZ_SHORT ?= 15
FUZZ_NAMES := image multipart query train_json model_file idx keras_h5
FUZZ_LIB := build/fuzz-lib
FUZZ_FLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_BINS := $(FUZZ_NAMES:%=$(B)/fuzz/fuzz_%)
FUZZ_OTHERS = $(B)/fuzz/fuzz_onnx_reader $(B)/fuzz/fuzz_onnx_import $(B)/fuzz/fuzz_keras_model
$(FUZZ_BINS): $(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/api/inproc.h $(FUZZ_LIB)/libhttp.a $(FUZZ_LIB)/libcore.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -std=c11 -D_GNU_SOURCE -pthread -Icore -Iapi -Iserver -Itests/api \
	    -I$(FUZZ_LIB)/gen $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB)/libhttp.a $(FUZZ_LIB)/libcore.a $(PKG_LIBS) $(LDLIBS)
fuzz: $(B)/convscope
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory B=$(FUZZ_LIB) CC=$(FUZZ_CC) XCFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" \
	    $(FUZZ_LIB)/libcore.a $(FUZZ_LIB)/libhttp.a
	@$(MAKE) --no-print-directory $(FUZZ_BINS) $(FUZZ_OTHERS)
	@tests/fuzz/run.sh $(FUZZ_SHORT) $(FUZZ_BINS) $(FUZZ_OTHERS)

fuzz-onnx: $(B)/fuzz/fuzz_onnx_reader $(B)/fuzz/fuzz_onnx_import
	@mkdir -p $(B)/fuzz/corpus $(B)/fuzz/corpus-import
	$(B)/fuzz/fuzz_onnx_reader -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=$(B)/fuzz/ \
	    $(B)/fuzz/corpus tests/data/onnx
	$(B)/fuzz/fuzz_onnx_import -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=$(B)/fuzz/import- \
	    $(B)/fuzz/corpus-import tests/data/onnx tests/data/models

# libFuzzer on the Keras full-model reader (configurations and .keras archives) over the
# whole core, seeded with the committed Keras test models and their configurations.
$(B)/fuzz/fuzz_keras_model: tests/fuzz/fuzz_keras_model.c $(CORE_SRC) $(ONNX_GEN)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 -std=c11 -D_GNU_SOURCE -pthread -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Icore -I$(B)/gen $(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_keras_model.c \
	    $(CORE_SRC) $(B)/gen/onnx.pb-c.c $(PKG_LIBS) $(LDLIBS)
fuzz-keras: $(B)/fuzz/fuzz_keras_model
	@mkdir -p $(B)/fuzz/corpus-keras
	$(PYTHON) -c 'import h5py, sys; [open("$(B)/fuzz/corpus-keras/" + f.split("/")[-1] + ".json", "wb").write(v if isinstance(v, bytes) else v.encode()) for f in sys.argv[1:] for v in [h5py.File(f).attrs["model_config"]]]' \
	    tests/data/keras/*.h5 2>/dev/null || true
	cp tests/data/keras/*.keras $(B)/fuzz/corpus-keras/
	$(B)/fuzz/fuzz_keras_model -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=$(B)/fuzz/keras- $(B)/fuzz/corpus-keras

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
