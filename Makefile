# vigie — one entry point: all, demo, check, bench, fuzz, valgrind, install, clean.
#
# Layout: common/ is a static library every program links; each component
# folder (agent/, collector/, alarms/, billing/, query/) is a static library
# whose main.c (or cli.c for the `vigie` CLI) becomes a program. Unit tests
# tests/unit/<module>_test.c link against all of them with cmocka.
#
#   make SAN=1 check     AddressSanitizer + UndefinedBehaviorSanitizer build
#                        (objects in build-san/, so it never mixes with build/)
#   make valgrind        the daemons under valgrind's memcheck through a few
#                        integration tests (bench/valgrind_check.sh; slow)

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
SAN     ?= 0
LIBVIRT ?= test:///default
INTERVAL ?= 2

ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS :=
endif

PKGS     := libvirt librrd nanomsg jansson sqlite3 libpq libmicrohttpd libcurl inih libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-unused-parameter -Iinclude $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP \
           -DVG_PREFIX=\"$(PREFIX)\"
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
LDLIBS  += $(PKG_LIBS) -lpthread -lm

COMMON_SRC    := $(wildcard common/*.c)
AGENT_SRC     := $(filter-out agent/main.c,$(wildcard agent/*.c))
COLLECTOR_SRC := $(filter-out collector/main.c,$(wildcard collector/*.c)) \
                 $(wildcard alarms/*.c) $(wildcard billing/*.c) \
                 $(filter-out query/cli%.c,$(wildcard query/*.c))
CLI_SRC       := $(filter-out query/cli.c,$(wildcard query/cli_*.c))
UNIT_SRC      := $(wildcard tests/unit/*_test.c)
BENCH_SRC     := $(wildcard bench/*.c)
FUZZ_SRC      := $(wildcard tests/fuzz/*_fuzz.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON    := $(BUILD)/lib/libvgcommon.a
LIBAGENT     := $(BUILD)/lib/libvgagent.a
LIBCOLLECTOR := $(BUILD)/lib/libvgcollector.a
LIBCLI       := $(BUILD)/lib/libvgcli.a
ALL_LIBS     := $(LIBCOLLECTOR) $(LIBAGENT) $(LIBCLI) $(LIBCOMMON)

BINS  := $(BUILD)/bin/vigie-agent $(BUILD)/bin/vigie-collector $(BUILD)/bin/vigie
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps demo check unit-tests bench fuzz valgrind install clean format
# Keep objects of tests and benches (make would delete them as intermediates).
.SECONDARY:
all: $(BINS)

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBAGENT): $(call obj,$(AGENT_SRC))
$(LIBCOLLECTOR): $(call obj,$(COLLECTOR_SRC))
$(LIBCLI): $(call obj,$(CLI_SRC))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^ $(if $^,,$(BUILD)/obj/empty.o)

$(BUILD)/obj/empty.o:
	@mkdir -p $(dir $@)
	echo 'int vg_empty_lib_placeholder;' | $(CC) -x c -c - -o $@
$(ALL_LIBS): | $(BUILD)/obj/empty.o

$(BUILD)/bin/vigie-agent: $(call obj,agent/main.c) $(LIBAGENT) $(LIBCOMMON)
$(BUILD)/bin/vigie-collector: $(call obj,collector/main.c) $(LIBCOLLECTOR) $(LIBCOMMON)
$(BUILD)/bin/vigie: $(call obj,query/cli.c) $(LIBCLI) $(LIBCOMMON)
$(BUILD)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%_test: $(call obj,tests/unit/%_test.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(call obj,bench/%.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit-tests: $(UNITS)

# The README's two commands. Both install what is missing first.
demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh "$(LIBVIRT)" "$(INTERVAL)" "$(BUILD)"

check: deps
	@$(MAKE) --no-print-directory all unit-tests
	@VIGIE_BUILD=$(BUILD) bash tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	@VIGIE_BUILD=$(BUILD) bash bench/run.sh

fuzz: deps
	@bash tests/fuzz/run.sh

valgrind: deps
	@$(MAKE) --no-print-directory all unit-tests
	@VIGIE_BUILD=$(BUILD) bash bench/valgrind_check.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/vigie \
	    $(DESTDIR)/etc/vigie $(DESTDIR)/lib/systemd/system
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 etc/vigie.conf $(DESTDIR)$(PREFIX)/share/vigie/vigie.conf.sample
	test -e $(DESTDIR)/etc/vigie/vigie.conf || install -m 0640 etc/vigie.conf $(DESTDIR)/etc/vigie/vigie.conf
	for u in etc/systemd/*.service; do \
	    sed 's|@BINDIR@|$(PREFIX)/bin|g' $$u > $(DESTDIR)/lib/systemd/system/$$(basename $$u); done
	if [ -d query/www ]; then install -d $(DESTDIR)$(PREFIX)/share/vigie/www && \
	    cp -r query/www/. $(DESTDIR)$(PREFIX)/share/vigie/www/; fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-valgrind

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
