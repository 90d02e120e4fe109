# Kittyhawk for Linux.  `make` builds everything into $(BUILD)/, tools into
# $(BUILD)/bin/.  `make check` and `make demo` first install what is missing.

BUILD    ?= build
CC       ?= cc
SAN      ?=
CFLAGS   ?= -O2 -g
CSTD      = -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-unused-parameter -fno-strict-aliasing
LIBS      = -lsqlite3 -lpq -lsodium -lmnl -lnftables -lz -lpthread
INC       = -Isrc
# snprintf truncation is how we bound user-visible strings, not a mistake.
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
CSTD     += -Wno-format-truncation
endif

# kh-ctnode (src/nodes/ctnode_main.c), a free ct node's waiting process, is
# a static program khd carries inside itself: never under the sanitizers,
# whose runtimes are shared libraries.
STUBCFLAGS := $(CFLAGS)

ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# Every .c under src/ is part of libkh except the programs' mains.
MAINS     = src/khd/main.c $(wildcard src/tools/main_*.c) src/nodes/ctnode_main.c
# SKIP: source patterns left out (e.g. work in progress): SKIP='src/nodes/%'
SKIP     ?=
LIBSRC    = $(filter-out $(MAINS) $(SKIP),$(shell find src -name '*.c' | sort))
LIBOBJ    = $(LIBSRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/ctnode_blob.o
TOOLS     = $(patsubst src/tools/main_%.c,$(BUILD)/bin/%,$(wildcard src/tools/main_*.c))
UNITSRC   = $(filter-out $(SKIPTESTS),$(wildcard tests/unit/test_*.c))
SKIPTESTS ?=
UNITS     = $(UNITSRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/bin/khd $(TOOLS) $(UNITS) $(BUILD)/tests/rawframe $(BUILD)/tests/fabhost \
     $(BUILD)/libkhrdma.a \
     $(BUILD)/libkhrdma.so $(BUILD)/tests/rdmatest $(BUILD)/examples/counter \
     $(BUILD)/bench/rdmapeer $(BUILD)/libkhmc.a $(BUILD)/tests/mcstress $(BUILD)/libebb.a \
     $(BUILD)/bench/ebbbench $(BUILD)/tests/chroot_escape

# libkhrdma: what node software links to use the RDMA device (docs/rdma.md);
# it needs the C library only.  khrdma, the tool that goes into appliances,
# links it alone.
RDMALIB   = src/rdma/lib.c
$(BUILD)/libkhrdma.a: $(BUILD)/obj/src/rdma/lib.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libkhrdma.so: $(RDMALIB) src/rdma/khrdma.h src/rdma/ring.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) -fPIC -shared -Wl,-soname,libkhrdma.so.1 $(LDFLAGS) -o $@ $(RDMALIB)

$(BUILD)/bin/khrdma: $(BUILD)/obj/src/tools/main_khrdma.o $(BUILD)/libkhrdma.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

# The RDMA end-to-end test's helper, and docs/rdma.md's example program,
# built as a user builds it (khrdma.h on the include path, -lkhrdma).
$(BUILD)/tests/rdmatest: tests/tools/rdmatest.c $(BUILD)/libkhrdma.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) $(LDFLAGS) -o $@ $< $(BUILD)/libkhrdma.a

# The one-sided cache's stress test client (tests/e2e/mcrdma.sh), a user of libkhmc.
$(BUILD)/tests/mcstress: tests/tools/mcstress.c $(BUILD)/libkhmc.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) $(LDFLAGS) -o $@ $< $(BUILD)/libkhmc.a -lpthread

# libebb's micro-benchmarks (bench/ebb.sh), built as a user of libebb.a.
$(BUILD)/bench/ebbbench: bench/ebbbench.c $(BUILD)/libebb.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) $(LDFLAGS) -o $@ $< $(BUILD)/libebb.a -lpthread

$(BUILD)/bench/rdmapeer: bench/rdmapeer.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(BUILD)/examples/counter: examples/rdma/counter.c $(BUILD)/libkhrdma.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) -Isrc/rdma $(LDFLAGS) -o $@ $< -L$(BUILD) -l:libkhrdma.a

# libkhmc: the memcached client library (docs/mc.md) on its own, with the
# item checks it shares with khmcd and libkhrdma's object for its one-sided
# gets, for programs built outside this tree (it needs the C library only).
KHMCSRC   = $(wildcard src/mc/khmc*.c) src/mc/item.c src/rdma/lib.c
$(BUILD)/libkhmc.a: $(KHMCSRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

khmc: $(BUILD)/libkhmc.a

# libebb: Elastic Building Blocks (docs/ebb.md), for programs built outside
# this tree (src/ebb/ebb.h; it needs the C library and -lpthread).
EBBSRC    = $(wildcard src/ebb/*.c) src/common/util.c
$(BUILD)/libebb.a: $(EBBSRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

# What a chroot escape from a node reaches (tests/unit/test_ct.c, ct-4.2):
# static, for a node's root without a C library.
$(BUILD)/tests/chroot_escape: tests/tools/chroot_escape.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(STUBCFLAGS) -static -o $@ $<

# The raw-frame tool of the fabric's end-to-end test (tests/e2e/fabric.sh).
$(BUILD)/tests/rawframe: tests/tools/rawframe.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(LDFLAGS) -o $@ $<

# One host's fabric, driven line by line (tests/e2e/fabric_hosts.sh).
$(BUILD)/tests/fabhost: $(BUILD)/obj/tests/tools/fabhost.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) -MMD -MP -c $< -o $@

# kh-ctnode, and the object that carries its bytes into libkh (ct.c puts
# them in a sealed memfd the spawner executes).
CTNODESRC = src/nodes/ctnode_main.c src/nodes/ct_child.c
$(BUILD)/stub/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(STUBCFLAGS) $(INC) -MMD -MP -c $< -o $@

$(BUILD)/obj/kh-ctnode: $(CTNODESRC:%.c=$(BUILD)/stub/%.o)
	@mkdir -p $(dir $@)
	$(CC) -static -s -o $@ $^

$(BUILD)/obj/ctnode_blob.o: src/nodes/ctnode_blob.S $(BUILD)/obj/kh-ctnode
	$(CC) -DKH_CTNODE='"$(BUILD)/obj/kh-ctnode"' -c $< -o $@

-include $(shell find $(BUILD)/stub -name '*.d' 2>/dev/null)

$(BUILD)/libkh.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/khd: $(BUILD)/obj/src/khd/main.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bin/%: $(BUILD)/obj/src/tools/main_%.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(LIBS_$*)

# ebbkv goes into node appliances (docs/ebb.md): linked statically, a node
# carries no libc for it and 64 nodes starting at once do no dynamic
# linking (not under the sanitizers, whose runtime is a shared library).
$(BUILD)/bin/ebbkv: $(BUILD)/obj/src/tools/main_ebbkv.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(if $(filter 1,$(SAN)),,-static) -o $@ $^ -lpthread

# The PostgreSQL state backend (src/state/state_pg.c) and the unit tests
# that run against it (tests/unit/statefx.h): libpq's header.
PGINC     = -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
$(BUILD)/obj/src/state/state_pg.o: CFLAGS += $(PGINC)
$(BUILD)/obj/tests/unit/%.o: CFLAGS += $(PGINC)

# khfs (src/khfs/) is a FUSE server: libfuse3 for it alone.
$(BUILD)/obj/src/khfs/%.o: CFLAGS += $(shell pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/include/fuse3)
LIBS_khfs = -lfuse3

# A unit test may need more libraries: LIBS_test_NAME.
LIBS_test_mcketama = -lmemcached

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS) $(LIBS_$*)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Fuzzing (docs/fuzzing.md): a libFuzzer harness fuzz/NAME.c for each parser
# that takes outside input, built with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build/fuzz/NAME (only the sources the
# harnesses need, instrumented for coverage).  `make fuzz` runs each for
# FUZZ_SECS seconds from its seed corpus fuzz/corpus/NAME/ (FUZZ=PATTERN
# picks targets) and fails on any crash; `make check` runs every seed once.
FUZZCC    ?= clang
FUZZ_SECS ?= 60
FUZZ      ?=
FUZZB     = build/fuzz
FUZZFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
FUZZSRC   = $(wildcard src/common/*.c src/firmware/*.c src/meter/*.c src/mc/*.c) \
            src/image/uimage.c src/image/ramdisk.c src/khd/config.c $(wildcard src/policy/*.c) \
            src/tools/khdo.c \
            src/tools/sshargs.c src/rdma/engine.c src/rdma/lib.c src/fabric/addr.c \
            src/appliance/elf.c src/admission/pubkey.c src/khd/metrics_text.c \
            src/exec/frame.c src/khfs/query.c src/agent/link.c src/agent/linkmsg.c
FUZZOBJ   = $(FUZZSRC:%.c=$(FUZZB)/obj/%.o)
FUZZERS   = $(patsubst fuzz/%.c,$(FUZZB)/%,$(wildcard fuzz/*.c))

$(FUZZB)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZCC) $(filter-out -Wno-format-truncation,$(CSTD)) $(FUZZFLAGS) \
	    -fsanitize=fuzzer-no-link $(INC) -MMD -MP -c $< -o $@

# (Makefile too: a source added to FUZZSRC gets built)
$(FUZZB)/libkhfuzz.a: $(FUZZOBJ) Makefile
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(FUZZB)/%: $(FUZZB)/obj/fuzz/%.o $(FUZZB)/libkhfuzz.a
	$(FUZZCC) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

# The seed generator (fuzz/tools/seedgen.c) writes the binary seeds
# (ledger exports signed with the harness's key, RDMA descriptors).
$(FUZZB)/seedgen: fuzz/tools/seedgen.c $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) $(LDFLAGS) -o $@ $^ $(LIBS)

fuzz-build: $(FUZZERS)

fuzz: fuzz-build
	@fuzz/run.sh run $(FUZZ_SECS) $(FUZZ)

-include $(shell find $(FUZZB)/obj -name '*.d' 2>/dev/null)

# Debian packages the build, the tests and the demo need.
deps:
	@scripts/deps.sh

JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/san SAN=1 all
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-build
	@tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh

bench: deps all
	@bench/run.sh

# Long runs, by hand: the load test's churn for 10 minutes, then the soak
# benchmark (figures in bench/RESULTS.md, "Soak").
soak: deps all
	@LOAD_SECS=600 tests/run.sh e2e/load
	@bench/soak.sh

# Appliances (docs/appliances.md): appliances/NAME/recipe becomes
# $(BUILD)/appliances/NAME.cpio.gz, rebuilt when its recipe directory changes.
APPLIANCES = $(patsubst appliances/%/recipe,$(BUILD)/appliances/%.cpio.gz,$(wildcard appliances/*/recipe))

appliances: $(APPLIANCES)

# The memcached appliance carries khmcd of the default build.
ifeq ($(BUILD),build)
$(BUILD)/appliances/memcached.cpio.gz: $(BUILD)/bin/khmcd
endif

.SECONDEXPANSION:
$(BUILD)/appliances/%.cpio.gz: $$(wildcard appliances/$$*/*) $(BUILD)/bin/khappliance
	@mkdir -p $(dir $@)
	$(BUILD)/bin/khappliance -o $@ -r appliances/$*

format:
	clang-format -i $$(find src tests bench fuzz -name '*.[ch]')

clean:
	rm -rf build

.PHONY: all deps check demo bench soak appliances format clean khmc fuzz fuzz-build
.SECONDARY:
