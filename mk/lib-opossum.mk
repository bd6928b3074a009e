# mk/lib-opossum.mk -- the opossum-parity unit tests of the breaker library (tests/lib/opossum).
#
# Every tests/lib/opossum/test_*.c is one cmocka program, built twice: plain
# against $(BUILD)/rel/libcb.a and with AddressSanitizer/UBSan against
# $(BUILD)/asan/libcb.a. `make test-lib-opossum` builds and runs them all and
# fails if any test (or program) fails.

OPOSSUM_DIR      := tests/lib/opossum
OPOSSUM_NAMES    := $(notdir $(basename $(wildcard $(OPOSSUM_DIR)/test_*.c)))
OPOSSUM_HARNESS  := $(OPOSSUM_DIR)/harness.c $(OPOSSUM_DIR)/harness.h
OPOSSUM_LIBS     := -lcmocka -lcjson -pthread -lm
OPOSSUM_REL      := $(addprefix $(BUILD)/rel/tests/opossum/,$(OPOSSUM_NAMES))
OPOSSUM_ASAN     := $(addprefix $(BUILD)/asan/tests/opossum/,$(OPOSSUM_NAMES))
# A hung test must not hang the suite: each program gets this many seconds.
OPOSSUM_LIMIT_S  ?= 120

TEST_SUITES += lib-opossum

$(OPOSSUM_REL): $(BUILD)/rel/tests/opossum/%: $(OPOSSUM_DIR)/%.c $(OPOSSUM_HARNESS) $(BUILD)/rel/libcb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) -I$(OPOSSUM_DIR) -o $@ $< $(OPOSSUM_DIR)/harness.c \
		$(BUILD)/rel/libcb.a $(OPOSSUM_LIBS)

$(OPOSSUM_ASAN): $(BUILD)/asan/tests/opossum/%: $(OPOSSUM_DIR)/%.c $(OPOSSUM_HARNESS) $(BUILD)/asan/libcb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_asan) -I$(OPOSSUM_DIR) -o $@ $< $(OPOSSUM_DIR)/harness.c \
		$(BUILD)/asan/libcb.a $(OPOSSUM_LIBS)

.PHONY: test-lib-opossum build-lib-opossum
build-lib-opossum: $(OPOSSUM_REL) $(OPOSSUM_ASAN)

test-lib-opossum: build-lib-opossum
	@fail=0; \
	for t in $(OPOSSUM_REL) $(OPOSSUM_ASAN); do \
		echo "---- $$t"; \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
			timeout $(OPOSSUM_LIMIT_S) $$t || { echo "FAILED: $$t (exit $$?)"; fail=1; }; \
	done; \
	exit $$fail
