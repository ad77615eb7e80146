# vigie — one entry point: all, deps, demo, check, unit, bench, fuzz,
# valgrind, format, format-check, install, clean.
#
# Layout: one static library per component, layered (a library may use only
# those after it in LIB_ORDER; tests/layers_test.sh checks the includes):
#   api        query/api/   the HTTP JSON API, run inside the collector
#   cli        query/cli/   the `vigie` CLI (cli.c is its main)
#   agent      agent/       vigie-agent (main.c is its main)
#   alarms     alarms/      alarm engine and notifiers
#   billing    billing/     metering, rate card, invoices
#   collector  collector/   the collector core: receiver, registry, store
#   common     common/      what every program links
# collector/compose.c is vigie-collector's main and its composition root:
# the one file that wires the core, alarms, billing and the API together.
# Each unit test tests/unit/<name>_test.c, and each C integration test
# tests/integration/<name>_test.c (they start the real daemons), names the
# libraries it links in LIBS_<name>_test below, and links only those: using
# anything else fails the link, which is how a test stays on its own layer.
#
#   make unit            build and run only the unit tests (edit-compile-test
#                        loop; no dependency check, no daemons)
#   make SAN=1 check     AddressSanitizer + UndefinedBehaviorSanitizer build
#                        (objects in build-san/, so it never mixes with build/)
#   make valgrind        the daemons under valgrind's memcheck through a few
#                        integration tests (tests/valgrind_check.sh; slow)
#   make format-check    count the lines `make format` would change
#   make man             the man pages (docs/man/*.scd, scdoc) into $(BUILD)/man
#   make deb             Debian packages vigie-agent, vigie-collector, vigie
#                        (dpkg-buildpackage, debian/), in ..
#   make deb-test        build them, install, run, remove and purge them
#                        (tests/package/deb_test.sh; as root, a few minutes)

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

PKGS     := libvirt librrd nanomsg jansson sqlite3 libpq libmicrohttpd libcurl libcrypto libprotobuf-c
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
# -Iinclude: the contracts between modules ("vigie/store.h"); -I.: a
# component's own headers, named by their folder ("agent/spool.h").
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-unused-parameter -Iinclude -I. $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP \
           -DVG_PREFIX=\"$(PREFIX)\" -I$(GEN)
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
# libsnappy (Prometheus remote read) ships no .pc file on Debian.
LDLIBS  += $(PKG_LIBS) -lsnappy -lpthread -lm

COMMON_SRC    := $(wildcard common/*.c)
AGENT_SRC     := $(filter-out agent/main.c,$(wildcard agent/*.c))
COLLECTOR_SRC := $(filter-out collector/compose.c,$(wildcard collector/*.c))
ALARMS_SRC    := $(wildcard alarms/*.c)
BILLING_SRC   := $(wildcard billing/*.c)
# Generated at build time, never committed: C for the Prometheus remote
# read messages (query/api/prompb/*.proto) by protoc-c, under $(BUILD)/gen.
GEN           := $(BUILD)/gen
PROTO         := $(wildcard query/api/prompb/*.proto)
GEN_SRC       := $(patsubst query/api/%.proto,$(GEN)/%.pb-c.c,$(PROTO))
GEN_HDR       := $(GEN_SRC:.c=.h)
API_SRC       := $(wildcard query/api/*.c) $(GEN_SRC)
CLI_SRC       := $(filter-out query/cli/cli.c,$(wildcard query/cli/*.c))
UNIT_SRC      := $(wildcard tests/unit/*_test.c)
INTEG_SRC     := $(wildcard tests/integration/*_test.c)
BENCH_SRC     := $(wildcard bench/*.c)
FUZZ_SRC      := $(wildcard tests/fuzz/*_fuzz.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# Link order: a library before those it uses.
LIB_ORDER := api cli agent alarms billing collector common
lib  = $(BUILD)/lib/libvg$(1).a
libs = $(foreach l,$(LIB_ORDER),$(if $(filter $(l),$(1)),$(call lib,$(l))))

LIBCOMMON    := $(call lib,common)
LIBAGENT     := $(call lib,agent)
LIBCOLLECTOR := $(call lib,collector)
LIBALARMS    := $(call lib,alarms)
LIBBILLING   := $(call lib,billing)
LIBAPI       := $(call lib,api)
LIBCLI       := $(call lib,cli)
ALL_LIBS     := $(call libs,$(LIB_ORDER))

# The libraries each unit test links (in any order; see above).
LIBS_agent_events_test  := agent billing common
LIBS_alarm_config_test  := alarms common
LIBS_alarm_docs_test    := api alarms billing collector common
LIBS_alarm_api_cut_test := api alarms billing collector common
LIBS_alarm_engine_test  := alarms common
LIBS_alarm_engine_pg_test := alarms common
LIBS_alarm_eval_test    := alarms common
LIBS_alarm_model_test   := alarms common
LIBS_alarm_pub_test     := alarms common
LIBS_alarm_guard_test   := alarms common
LIBS_alarm_rule_test    := alarms common
LIBS_alarm_series_test  := alarms common
LIBS_alarm_quota_test   := alarms common
LIBS_alarm_silence_test := alarms common
LIBS_alarm_silence_pg_test := alarms common
LIBS_alarm_group_test := alarms common
LIBS_alarm_group_pg_test := alarms common
LIBS_alarm_stream_test  := alarms common
LIBS_alarm_lease_test   := alarms common
LIBS_alarm_store_test   := alarms common
LIBS_alarm_outbox_record_test := alarms common
LIBS_api_query_test     := api alarms billing collector common
LIBS_api_static_test    := api alarms billing collector common
LIBS_api_policy_test    := api alarms billing collector common
LIBS_api_test           := api alarms billing collector common
LIBS_api_tenant_test    := api alarms billing collector common
LIBS_api_cap_test       := api alarms billing collector common
LIBS_api_rrdcached_test := api alarms billing collector common
LIBS_bill_invoice_test  := billing common
LIBS_bill_ledger_test   := billing common
LIBS_bill_meter_test    := billing common
LIBS_bill_money_test    := billing common
LIBS_bill_ratecard_test := billing common
LIBS_catalog_test       := common
LIBS_cli_alarms_test    := cli api alarms billing collector common
LIBS_cli_alarm_names_test := cli api alarms billing collector common
LIBS_cli_conf_test      := cli common
LIBS_cli_names_test     := cli api alarms billing collector common
LIBS_cli_query_test     := cli api alarms billing collector common
LIBS_cli_render_test    := cli api alarms billing collector common
LIBS_cli_test           := cli api alarms billing collector common
LIBS_clock_test         := common
LIBS_config_test        := common
LIBS_derive_test        := agent common
LIBS_db_test            := common
LIBS_dispatch_test      := common
LIBS_free_port_test     := common
LIBS_domxml_test        := agent common
LIBS_expr_test          := cli api alarms billing collector common
LIBS_hmap_test          := agent common
LIBS_http_test          := api alarms billing collector common
LIBS_journal_test       := collector common
LIBS_fd_limit_test      := api alarms billing collector common
LIBS_lastval_test       := collector common
LIBS_libvirt_test       := agent common
LIBS_name_test          := common
LIBS_tmpdir_test        := common
LIBS_poller_test        := agent common
LIBS_procfs_test        := agent common
LIBS_publish_test       := api alarms billing collector common
LIBS_receiver_test      := collector common
LIBS_receiver_proof_bound_test := collector common
LIBS_receiver_deadline_test := collector common
LIBS_receiver_queue_wait_test := collector common
LIBS_receiver_round_trip_test := collector common
LIBS_cluster_stream_test := collector common
LIBS_registry_list_test := collector common
LIBS_registry_test      := collector common
LIBS_remote_read_test   := api alarms billing collector common
LIBS_rrd_backend_test   := collector common
LIBS_rrd_format_test    := collector common
LIBS_rrd_placement_test := collector common
LIBS_store_rrdcached_test := collector common
LIBS_store_sync_refused_test := collector common
LIBS_store_shared_placement_test := collector common
LIBS_store_rrdcached_crash_test := collector common
LIBS_store_replay_memory_test := collector common
LIBS_timepack_test := collector common
LIBS_store_rrdcached_arrival_test := collector common
LIBS_store_first_batch_test := collector common
LIBS_store_rrdcached_sync_test := collector common
LIBS_rrdcached_test     := collector common
LIBS_rrdcached_flush_test := collector common
LIBS_rrdcached_replay_test := collector common
LIBS_rrdcached_check_confirm_test := collector common
LIBS_rrdcached_open_stall_test := collector common
LIBS_rrdcached_refused_flush_test := api alarms billing collector common
LIBS_sender_test        := agent common
LIBS_sign_sender_test   := agent common
LIBS_sign_test          := common
LIBS_spool_test         := agent common
LIBS_sqlitedb_test      := common
LIBS_store_cache_test   := collector common
LIBS_store_flush_wait_test := collector common
LIBS_store_policy_test  := collector common
LIBS_rrd_file_test      := collector common
LIBS_lifecycle_test     := billing collector common
LIBS_store_test         := collector common
LIBS_store_nomem_test   := collector common
LIBS_token_test         := api alarms billing collector common
LIBS_wire_test          := common

MAN_SRC := $(wildcard docs/man/*.scd)
MANS    := $(patsubst docs/man/%.scd,$(BUILD)/man/%,$(MAN_SRC))
BINS  := $(BUILD)/bin/vigie-agent $(BUILD)/bin/vigie-collector $(BUILD)/bin/vigie
UNITS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEGS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps demo check e2e-test unit unit-tests integration-tests bench fuzz valgrind install clean \
        format format-check man deb deb-test cluster-test
# Keep objects of tests and benches (make would delete them as intermediates).
.SECONDARY:
# A failed link must not leave a file that looks up to date.
.DELETE_ON_ERROR:
all: $(BINS) $(MANS)

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# protoc-c writes both files of a .proto at once; every API source may
# include them (through api_handlers.h), so they come first.
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: query/api/%.proto $(PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -Iquery/api $<
$(call obj,$(wildcard query/api/*.c) $(UNIT_SRC) $(FUZZ_SRC) $(BENCH_SRC) collector/compose.c): | $(GEN_HDR)

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBAGENT): $(call obj,$(AGENT_SRC))
$(LIBCOLLECTOR): $(call obj,$(COLLECTOR_SRC))
$(LIBALARMS): $(call obj,$(ALARMS_SRC))
$(LIBBILLING): $(call obj,$(BILLING_SRC))
$(LIBAPI): $(call obj,$(API_SRC))
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
$(BUILD)/bin/vigie-collector: $(call obj,collector/compose.c) \
    $(call libs,api alarms billing collector common)
$(BUILD)/bin/vigie: $(call obj,query/cli/cli.c) $(call libs,cli common)
$(BUILD)/bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.SECONDEXPANSION:
$(BUILD)/tests/%_test: $(call obj,tests/unit/%_test.c) $$(call libs,$$(LIBS_$$*_test))
	@mkdir -p $(dir $@)
	@test -n "$(LIBS_$*_test)" || { echo "Makefile: no LIBS_$*_test (the libraries $*_test links)" >&2; exit 1; }
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/tests/integration/%_test: $(call obj,tests/integration/%_test.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(call obj,bench/%.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit-tests: $(UNITS)
integration-tests: $(INTEGS)

# The edit-compile-test loop: only the unit tests, same summary line.
unit:
	@$(MAKE) --no-print-directory unit-tests
	@VIGIE_BUILD=$(BUILD) TEST_GROUPS=unit bash tests/run.sh

# The README's two commands. Both install what is missing first.
demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh "$(LIBVIRT)" "$(INTERVAL)" "$(BUILD)"

# The tests run one per core, the longest first (TEST_JOBS,
# tests/durations.txt, docs/testing.md; tests/run.sh: serial they took
# ~16 min of wall time on a 2-core machine, past make check's 15-minute
# budget), also under SAN=1: one at a time its tests took ~20 of .ci/run's
# 54 minutes, past its 45 (docs/testing.md, "The CI budget"). Each program
# is slower under SAN=1, but most of its time is waiting on its daemons.
# TEST_JOBS=1 on the command line runs them one at a time.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
# The bench tools the integration tests drive (bench_tool, alarm_tools in
# tests/integration/lib.sh) are made here, before the tests: made by the
# tests themselves, two programs started together ran make on one target
# at once and one of them skipped ("could not be built").
TEST_BENCH_TOOLS = $(BUILD)/bench/query_seed $(BUILD)/bench/billing_replay \
		   $(BUILD)/bench/alarms_send $(BUILD)/bench/alarms_hook \
		   $(BUILD)/bench/alarms_owner

check: deps
	@$(MAKE) --no-print-directory all unit-tests integration-tests $(TEST_BENCH_TOOLS)
	@VIGIE_BUILD=$(BUILD) TEST_JOBS=$(TEST_JOBS) TEST_GROUPS="unit integration" bash tests/run.sh

# The end-to-end test (tests/e2e/qemu_test.sh: real QEMU guests under
# libvirtd, compared with virsh and /proc; about two minutes, alone):
# outside make check, which it pushed past 15 minutes on 2 cores;
# .ci/run calls it after make check, and with SAN=1.
e2e-test: deps
	@$(MAKE) --no-print-directory all
	@VIGIE_BUILD=$(BUILD) TEST_GROUPS=e2e bash tests/run.sh

# The cluster scenario (tests/cluster/cluster_test.sh: PostgreSQL, two
# rrdcached, three collectors, agents, failures): a few minutes, so outside
# make check; .ci/run calls it. Knobs: HOSTS, DOMAINS, POLLS, FAULTS.
cluster-test: deps
	@$(MAKE) --no-print-directory all $(TEST_BENCH_TOOLS)
	@VIGIE_BUILD=$(BUILD) TEST_GROUPS=cluster bash tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES) $(BUILD)/tests/store_rrdcached_crash_test
	@VIGIE_BUILD=$(BUILD) bash bench/run.sh

fuzz: deps
	@bash tests/fuzz/run.sh

valgrind: deps
	@$(MAKE) --no-print-directory all integration-tests
	@VIGIE_BUILD=$(BUILD) bash tests/valgrind_check.sh

# Man pages: written once in scdoc (docs/man/), the source format Debian
# builds from; tests/man_test.sh checks them against --help and the keys.
man: $(MANS)
$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@

# Each daemon's configuration file, cut from the one sample etc/vigie.conf
# by section: the agent's holds [agent] and [log], the collector's the
# rest. Two files so that each package owns its own conffile.
CONFS := $(BUILD)/etc/agent.conf $(BUILD)/etc/collector.conf
$(BUILD)/etc/agent.conf: etc/vigie.conf
	@mkdir -p $(dir $@)
	awk 'BEGIN {print "# /etc/vigie/agent.conf: vigie-agent(8). Every key: vigie.conf(5)."} \
	    /^\[/ {keep = ($$0 == "[agent]" || $$0 == "[log]")} keep' $< > $@
$(BUILD)/etc/collector.conf: etc/vigie.conf
	@mkdir -p $(dir $@)
	awk 'BEGIN {print "# /etc/vigie/collector.conf: vigie-collector(8). Every key: vigie.conf(5)."} \
	    /^\[/ {keep = ($$0 != "[agent]")} keep' $< > $@

# The units run as the vigie user with systemd's sandbox; make check
# measures their exposure (tests/units_test.sh).
install: all $(MANS) $(CONFS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/vigie \
	    $(DESTDIR)/etc/vigie $(DESTDIR)/lib/systemd/system \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 etc/vigie.conf $(DESTDIR)$(PREFIX)/share/vigie/vigie.conf.sample
	for c in $(CONFS); do test -e $(DESTDIR)/etc/vigie/$$(basename $$c) || \
	    install -m 0644 $$c $(DESTDIR)/etc/vigie/; done
	for u in etc/systemd/*.service; do \
	    sed 's|@BINDIR@|$(PREFIX)/bin|g' $$u > $(DESTDIR)/lib/systemd/system/$$(basename $$u); done
	for m in $(MANS); do install -m 0644 $$m \
	    $(DESTDIR)$(PREFIX)/share/man/man$${m##*.}/; done
	install -m 0644 query/cli/vigie.bash-completion \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vigie
	if [ -d query/www ]; then install -d $(DESTDIR)$(PREFIX)/share/vigie/www && \
	    cp -r query/www/. $(DESTDIR)$(PREFIX)/share/vigie/www/; fi

# Debian packages with Debian's tools (debian/); the .debs land in ..
deb:
	dpkg-buildpackage -us -uc -b

deb-test:
	@VIGIE_BUILD=$(BUILD) bash tests/package/deb_test.sh

# .clang-format describes the code as it is; format-check counts the lines
# clang-format would still change (hand-aligned tables and the like).
format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bash scripts/format-check.sh

clean:
	rm -rf build build-san build-valgrind

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
