# mk/svc.mk -- the services' shared runtime (libsvc.a), the three service binaries,
# the database tool the tests use, `make run` and the integration suite.
#
# common/svc/svc.c and every common/svc/<room>/*.c go into $(BUILD)/<flavour>/libsvc.a;
# objects depend on every header and on the dashboard's files, which observe*.c
# may embed. Binaries: $(BUILD)/bin/{order,payment,shipment} (rel) and
# $(BUILD)/<flavour>/bin/... for the sanitizer flavours.

SVC_SRCS     := $(wildcard common/svc/*.c common/svc/*/*.c)
SVC_HDRS     := $(wildcard common/svc/*.h common/svc/*/*.h) $(wildcard common/include/*.h)
SVC_ASSETS   := $(shell find common/svc/observe/dashboard -type f 2>/dev/null)
# the services, from the one list of them (services.tsv)
SVC_NAMES    := $(shell awk '!/^\#/ && NF { print $$1 }' services.tsv)
SVC_FLAVOURS := rel asan tsan
SVC_LIBS      = $(PKG_LIBS) -lcivetweb -pthread -lm
SVC_BINDIR_rel  := $(BUILD)/bin
SVC_BINDIR_asan := $(BUILD)/asan/bin
SVC_BINDIR_tsan := $(BUILD)/tsan/bin
# How long the whole integration suite may run per flavour before it is stopped.
SVC_TEST_LIMIT_S ?= 900

# $(1) = flavour: objects, libsvc.a, the service binaries.
define svc_flavour
$(BUILD)/$(1)/svc/%.o: common/svc/%.c $(SVC_HDRS) $(SVC_ASSETS)
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $(PKG_CFLAGS) -c $$< -o $$@

$(BUILD)/$(1)/libsvc.a: $(patsubst common/svc/%.c,$(BUILD)/$(1)/svc/%.o,$(SVC_SRCS))
	@mkdir -p $$(@D)
	rm -f $$@ && $(AR) rcs $$@ $$^

$(BUILD)/$(1)/svcmain/%.o: %/main.c common/svc/svc.h
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) -c $$< -o $$@

$(SVC_BINDIR_$(1))/%: $(BUILD)/$(1)/svcmain/%.o $(BUILD)/$(1)/libsvc.a $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS) $(SAN_$(1)) -o $$@ $$< $(BUILD)/$(1)/libsvc.a $(BUILD)/$(1)/libcb.a $$(SVC_LIBS)

.PHONY: services-$(1)
services-$(1): $(addprefix $(SVC_BINDIR_$(1))/,$(SVC_NAMES))
endef
$(foreach f,$(SVC_FLAVOURS),$(eval $(call svc_flavour,$(f))))
# Objects reached only through pattern rules are intermediate; keep them so
# that a second make does not rebuild them.
.PRECIOUS: $(foreach f,$(SVC_FLAVOURS),$(BUILD)/$(f)/svc/%.o $(BUILD)/$(f)/svcmain/%.o)

# The test tool: reads the database (ping, find) and prints JSON lines.
$(BUILD)/bin/dbtool: tests/tools/dbtool.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS)

.PHONY: services run test-integration test-integration-rel test-integration-asan test-integration-tsan
services: services-rel $(BUILD)/bin/dbtool
all: services

# Installs what is missing (scripts/setup.sh skips what is there), builds, runs.
run:
	scripts/setup.sh
	$(MAKE) --no-print-directory services
	scripts/run.sh

TEST_SUITES += integration

# The whole integration suite, once per flavour: rel, ASan/UBSan with leak checks, TSan.
# rel runs on FerretDB over PostgreSQL (what `make run` uses), the sanitizer
# flavours over SQLite (the other backend), so both stay proven.
test-integration: services-rel services-asan services-tsan $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	@fail=0; for f in rel asan tsan; do \
		backend=sqlite; [ $$f = rel ] && backend=postgresql; \
		echo "---- integration ($$f, FerretDB over $$backend)"; \
		FERRETDB_BACKEND=$$backend timeout $(SVC_TEST_LIMIT_S) python3 tests/integration/test_services.py --flavour $$f || fail=1; \
	done; exit $$fail

test-integration-rel: services-rel $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	FERRETDB_BACKEND=postgresql timeout $(SVC_TEST_LIMIT_S) python3 tests/integration/test_services.py --flavour rel

test-integration-asan: services-asan $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	timeout $(SVC_TEST_LIMIT_S) python3 tests/integration/test_services.py --flavour asan

test-integration-tsan: services-tsan $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	timeout $(SVC_TEST_LIMIT_S) python3 tests/integration/test_services.py --flavour tsan

# The services under keep-alive load (wrk), side by side with a bare civetweb
# server and with the database alone, and with tracing on and off: tests/bench/bench_services.py.
$(BUILD)/rel/bench/civetweb_hello: tests/bench/civetweb_hello.c tests/bench/bench_server.h
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS_BASE) -O2 -g $< -o $@ -lcivetweb -pthread

# the tracing case's collector that throws spans away
$(BUILD)/rel/bench/otlp_sink: tests/bench/otlp_sink.c tests/bench/bench_server.h
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS_BASE) -O2 -g $< -o $@ -lcivetweb -pthread

$(BUILD)/rel/bench/db_bench: tests/bench/db_bench.c
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS_BASE) -O2 -g $(PKG_CFLAGS) $< -o $@ $(PKG_LIBS)

.PHONY: bench-services
bench-services: services-rel $(BUILD)/bin/dbtool $(BUILD)/bin/chaos $(BUILD)/rel/bench/civetweb_hello $(BUILD)/rel/bench/db_bench \
                $(BUILD)/rel/bench/otlp_sink
	@scripts/setup.sh >/dev/null
	@python3 tests/bench/bench_services.py $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))

# The chain's benchmark on commit REF's services and on this tree's, ROUNDS
# rounds in alternating order, then the medians side by side:
# tests/bench/bench_compare.py (make bench-compare REF=HEAD~1 ROUNDS=3).
.PHONY: bench-compare
bench-compare: services-rel $(BUILD)/bin/dbtool
	@$(if $(REF),,echo "bench-compare: name the old commit: make bench-compare REF=<commit> [ROUNDS=3]"; exit 2)
	@scripts/setup.sh >/dev/null
	@python3 tests/bench/bench_compare.py $(REF) $(ROUNDS) $(if $(BENCH_SECONDS),--seconds $(BENCH_SECONDS))
