# Builds the libFuzzer targets: called by `make fuzz-build` (Makefile.am,
# section "fuzz") as
#   make -f tests/fuzz/fuzz.mk SRCDIR=<top srcdir> OUT=<build>/tests/fuzz FUZZ_CC=clang
# Every core/*.c is compiled again here with clang's coverage and ASan+UBSan
# instrumentation (not the gcc-built libshopcore.a), once, into $(OUT)/obj;
# each tests/fuzz/fuzz_<name>.c becomes $(OUT)/fuzz_<name>.

SRCDIR ?= .
OUT ?= tests/fuzz
FUZZ_CC ?= clang
PKG_CONFIG ?= pkg-config
# V=1 shows the commands.
Q = $(if $(filter 1,$(V)),,@)

DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpq json-c libcrypto)
DEPS_LIBS := $(shell $(PKG_CONFIG) --libs libpq json-c libcrypto)

SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DSHOP_VERSION='"fuzz"' -g -O1 -Wall -Wextra -Wno-unused-parameter \
	$(SAN) -fsanitize=fuzzer-no-link -I$(SRCDIR)/core -I$(SRCDIR)/tests/fuzz $(DEPS_CFLAGS)
FUZZ_LDFLAGS = $(SAN) -fsanitize=fuzzer

CORE_SRCS := $(wildcard $(SRCDIR)/core/*.c)
CORE_OBJS := $(patsubst $(SRCDIR)/core/%.c,$(OUT)/obj/core/%.o,$(CORE_SRCS))
HEADERS := $(wildcard $(SRCDIR)/core/*.h) $(SRCDIR)/tests/fuzz/fuzz_common.h
TARGET_SRCS := $(filter-out %/fuzz_common.c,$(wildcard $(SRCDIR)/tests/fuzz/fuzz_*.c))
TARGETS := $(patsubst $(SRCDIR)/tests/fuzz/fuzz_%.c,$(OUT)/fuzz_%,$(TARGET_SRCS))

all: $(TARGETS)

$(OUT)/obj/core/%.o: $(SRCDIR)/core/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC   $@",:)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(OUT)/obj/%.o: $(SRCDIR)/tests/fuzz/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC   $@",:)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(OUT)/fuzz_%: $(OUT)/obj/fuzz_%.o $(OUT)/obj/fuzz_common.o $(CORE_OBJS)
	@$(if $(Q),echo "  FUZZLD   $@",:)
	$(Q)$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(DEPS_LIBS)

.PHONY: all
.SECONDARY:
