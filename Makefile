# Kittyhawk for Linux.  `make` builds everything into $(BUILD)/, tools into
# $(BUILD)/bin/.  `make check` and `make demo` first install what is missing.

BUILD    ?= build
CC       ?= cc
SAN      ?=
CFLAGS   ?= -O2 -g
CSTD      = -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wno-unused-parameter -fno-strict-aliasing
LIBS      = -lsqlite3 -lsodium -lmnl -lnftables -lz -lpthread
INC       = -Isrc
# snprintf truncation is how we bound user-visible strings, not a mistake.
ifeq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
CSTD     += -Wno-format-truncation
endif

ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

# Every .c under src/ is part of libkh except the programs' mains.
MAINS     = src/khd/main.c $(wildcard src/tools/main_*.c)
# SKIP: source patterns left out (e.g. work in progress): SKIP='src/nodes/%'
SKIP     ?=
LIBSRC    = $(filter-out $(MAINS) $(SKIP),$(shell find src -name '*.c' | sort))
LIBOBJ    = $(LIBSRC:%.c=$(BUILD)/obj/%.o)
TOOLS     = $(patsubst src/tools/main_%.c,$(BUILD)/bin/%,$(wildcard src/tools/main_*.c))
UNITSRC   = $(filter-out $(SKIPTESTS),$(wildcard tests/unit/test_*.c))
SKIPTESTS ?=
UNITS     = $(UNITSRC:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/bin/khd $(TOOLS) $(UNITS) $(BUILD)/tests/rawframe $(BUILD)/libkhrdma.a \
     $(BUILD)/libkhrdma.so $(BUILD)/tests/rdmatest $(BUILD)/examples/counter \
     $(BUILD)/bench/rdmapeer $(BUILD)/libkhmc.a $(BUILD)/tests/mcstress

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

# The raw-frame tool of the fabric's end-to-end test (tests/e2e/fabric.sh).
$(BUILD)/tests/rawframe: tests/tools/rawframe.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(CFLAGS) $(INC) -MMD -MP -c $< -o $@

$(BUILD)/libkh.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/khd: $(BUILD)/obj/src/khd/main.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bin/%: $(BUILD)/obj/src/tools/main_%.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(LIBS_$*)

# khfs (src/khfs/) is a FUSE server: libfuse3 for it alone.
$(BUILD)/obj/src/khfs/%.o: CFLAGS += $(shell pkg-config --cflags fuse3 2>/dev/null || echo -I/usr/include/fuse3)
LIBS_khfs = -lfuse3

# A unit test may need more libraries: LIBS_test_NAME.
LIBS_test_mcketama = -lmemcached

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libkh.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LIBS) $(LIBS_$*)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Debian packages the build, the tests and the demo need.
deps:
	@scripts/deps.sh

JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/san SAN=1 all
	@tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/demo.sh

bench: deps all
	@bench/run.sh

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
	clang-format -i $$(find src tests bench -name '*.[ch]')

clean:
	rm -rf build

.PHONY: all deps check demo bench appliances format clean khmc
.SECONDARY:
