# mk/lib.mk -- the circuit breaker library: libcb.a per flavour (rel, asan, tsan),
# its unit tests (lib-unit), its stress test (lib-stress) and its benchmark (bench).
#
# Users link:  $(BUILD)/<flavour>/libcb.a $(LIBCB_LIBS)   (i.e. -lcb -lcjson -pthread)

LIBCB_SRCS   := $(wildcard common/src/*.c)
LIBCB_HDRS   := common/include/cb.h common/include/cb_quorum.h common/include/cb_retry.h common/include/cb_limit.h common/include/cb_hedge.h $(wildcard common/src/*.h)
LIBCB_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null)
LIBCB_LIBS   := -lcjson -pthread
CMOCKA_LIBS  := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

# $(1) = flavour: objects under $(BUILD)/$(1)/libcb/, archive $(BUILD)/$(1)/libcb.a
define LIBCB_FLAVOUR
$(BUILD)/$(1)/libcb/%.o: common/src/%.c $(LIBCB_HDRS)
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $(LIBCB_CFLAGS) -c $$< -o $$@

$(BUILD)/$(1)/libcb.a: $(patsubst common/src/%.c,$(BUILD)/$(1)/libcb/%.o,$(LIBCB_SRCS))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^

$(BUILD)/$(1)/tests/lib_core: $(wildcard tests/lib/core/*.c tests/lib/core/*.h) $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) -Itests/lib/core $$(filter %.c,$$^) \
	    $(BUILD)/$(1)/libcb.a $(LIBCB_LIBS) $(CMOCKA_LIBS) -o $$@

$(BUILD)/$(1)/tests/lib_retry: $(wildcard tests/lib/retry/*.c) $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $$(filter %.c,$$^) \
	    $(BUILD)/$(1)/libcb.a $(LIBCB_LIBS) $(CMOCKA_LIBS) -o $$@

$(BUILD)/$(1)/tests/lib_limit: $(wildcard tests/lib/limit/*.c) $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $$(filter %.c,$$^) \
	    $(BUILD)/$(1)/libcb.a $(LIBCB_LIBS) $(CMOCKA_LIBS) -o $$@

$(BUILD)/$(1)/tests/lib_hedge: $(wildcard tests/lib/hedge/*.c) $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $$(filter %.c,$$^) \
	    $(BUILD)/$(1)/libcb.a $(LIBCB_LIBS) $(CMOCKA_LIBS) -o $$@

$(BUILD)/$(1)/tests/lib_stress: $(wildcard tests/lib/stress/*.c) $(BUILD)/$(1)/libcb.a
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $$(filter %.c,$$^) \
	    $(BUILD)/$(1)/libcb.a $(LIBCB_LIBS) -o $$@
endef
$(foreach f,rel asan tsan,$(eval $(call LIBCB_FLAVOUR,$(f))))

all: $(BUILD)/rel/libcb.a

.PHONY: libcb test-lib-unit test-lib-stress bench
libcb: $(BUILD)/rel/libcb.a $(BUILD)/asan/libcb.a $(BUILD)/tsan/libcb.a

TEST_SUITES += lib-unit lib-stress

# Unit tests of the breaker (tests/lib/core), of the retry policy
# (tests/lib/retry), of the concurrency limit (tests/lib/limit) and of the hedging policy (tests/lib/hedge), plain, under ASan+UBSan (with LeakSanitizer) and under
# TSan (several tests run real threads: coalescing, the issue-385 storm,
# ticker, pool, threads sharing a retry policy or a limiter, every hedged call).
LIB_UNIT := lib_core lib_retry lib_limit lib_hedge
test-lib-unit: $(foreach f,rel asan tsan,$(foreach t,$(LIB_UNIT),$(BUILD)/$(f)/tests/$(t)))
	@rc=0; for t in $(LIB_UNIT); do \
	    echo "-- lib-unit $$t (rel)"; $(BUILD)/rel/tests/$$t || rc=1; \
	    echo "-- lib-unit $$t (asan+ubsan)"; \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	        $(BUILD)/asan/tests/$$t || rc=1; \
	    echo "-- lib-unit $$t (tsan)"; TSAN_OPTIONS=halt_on_error=1 $(BUILD)/tsan/tests/$$t || rc=1; \
	done; test $$rc -eq 0

# Concurrency stress test under ThreadSanitizer, then the plain build.
test-lib-stress: $(BUILD)/tsan/tests/lib_stress $(BUILD)/rel/tests/lib_stress
	@echo "-- lib-stress (tsan)"; TSAN_OPTIONS=halt_on_error=1 $(BUILD)/tsan/tests/lib_stress; r1=$$?; \
	echo "-- lib-stress (rel)"; $(BUILD)/rel/tests/lib_stress; r2=$$?; \
	test $$r1 -eq 0 -a $$r2 -eq 0

# Built quietly so that `make bench` prints only its "bench <case> <ns> ns/call" lines.
$(BUILD)/rel/bench/cb_bench: tests/bench/cb_bench.c $(BUILD)/rel/libcb.a
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS_BASE) -O2 -g $(filter %.c,$^) $(BUILD)/rel/libcb.a $(LIBCB_LIBS) -o $@

bench:
	@$(MAKE) --no-print-directory -s $(BUILD)/rel/bench/cb_bench >/dev/null
	@$(BUILD)/rel/bench/cb_bench
