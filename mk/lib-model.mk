# mk/lib-model.mk -- the model-based tests of the breaker library (tests/lib/model):
# random, seeded scenarios run in lockstep against libcb and an executable model
# of its semantics. model_test: the breaker alone, with cb_tick() after every
# clock move and with none (lazy). retry_model_test: the retry policy of
# cb_retry.h composed with the breaker (cb_retry_fire: retry outside, breaker
# inside): attempts, back-off, budget, deadline, events, each breaker state.
#
#   make test-lib-model   each test's regression scenarios + its random
#                         sequences (MODEL_TEST_SEQS, RETRY_MODEL_TEST_SEQS),
#                         plain and under ASan+UBSan (seconds)
#   make fuzz-model       MODEL_FUZZ_SEQS and RETRY_MODEL_FUZZ_SEQS sequences
#                         on the plain build
#
# Each prints its seed: MODEL_SEED=<n> repeats a run of both (RETRY_MODEL_SEED
# the retry test's alone); MODEL_REPLAY=<n> / RETRY_MODEL_REPLAY=<n> replays the
# one sequence a mismatch names. MODEL_SEQS / RETRY_MODEL_SEQS override the counts.

MODEL_DIR             := tests/lib/model
MODEL_TEST_SEQS       ?= 3000
MODEL_ASAN_SEQS       ?= 1000
MODEL_FUZZ_SEQS       ?= 1000000
RETRY_MODEL_TEST_SEQS ?= 10000
RETRY_MODEL_ASAN_SEQS ?= 2000
RETRY_MODEL_FUZZ_SEQS ?= 2000000
MODEL_LIMIT_S         ?= 300

TEST_SUITES += lib-model

$(BUILD)/%/tests/model_test: $(MODEL_DIR)/model_test.c $(MODEL_DIR)/model_rng.h $(BUILD)/%/libcb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$*) -o $@ $< $(BUILD)/$*/libcb.a $(LIBCB_LIBS) -lm

$(BUILD)/%/tests/retry_model_test: $(MODEL_DIR)/retry_model_test.c $(MODEL_DIR)/model_rng.h $(BUILD)/%/libcb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$*) -o $@ $< $(BUILD)/$*/libcb.a $(LIBCB_LIBS) -lm

MODEL_ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Every run, even after one fails; the target fails if any did. Each test ends
# with "<name>: N passed, N failed", the lines scripts/summarize.py sums.
.PHONY: test-lib-model fuzz-model
test-lib-model: $(foreach f,rel asan,$(BUILD)/$(f)/tests/model_test $(BUILD)/$(f)/tests/retry_model_test)
	@echo "-- lib-model (rel)"; \
	MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_TEST_SEQS)} timeout $(MODEL_LIMIT_S) $(BUILD)/rel/tests/model_test; r1=$$?; \
	echo "-- lib-model (asan+ubsan)"; \
	$(MODEL_ASAN_ENV) MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_ASAN_SEQS)} \
	    timeout $(MODEL_LIMIT_S) $(BUILD)/asan/tests/model_test; r2=$$?; \
	echo "-- lib-model retry (rel)"; \
	RETRY_MODEL_SEQS=$${RETRY_MODEL_SEQS:-$(RETRY_MODEL_TEST_SEQS)} \
	    timeout $(MODEL_LIMIT_S) $(BUILD)/rel/tests/retry_model_test; r3=$$?; \
	echo "-- lib-model retry (asan+ubsan)"; \
	$(MODEL_ASAN_ENV) RETRY_MODEL_SEQS=$${RETRY_MODEL_SEQS:-$(RETRY_MODEL_ASAN_SEQS)} \
	    timeout $(MODEL_LIMIT_S) $(BUILD)/asan/tests/retry_model_test; r4=$$?; \
	test $$r1 -eq 0 -a $$r2 -eq 0 -a $$r3 -eq 0 -a $$r4 -eq 0

fuzz-model: $(BUILD)/rel/tests/model_test $(BUILD)/rel/tests/retry_model_test
	@MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_FUZZ_SEQS)} $(BUILD)/rel/tests/model_test; r1=$$?; \
	RETRY_MODEL_SEQS=$${RETRY_MODEL_SEQS:-$(RETRY_MODEL_FUZZ_SEQS)} $(BUILD)/rel/tests/retry_model_test; r2=$$?; \
	test $$r1 -eq 0 -a $$r2 -eq 0
