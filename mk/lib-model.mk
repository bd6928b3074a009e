# mk/lib-model.mk -- the model-based test of the breaker library (tests/lib/model):
# random, seeded scenarios run in lockstep against libcb and an executable model
# of its semantics, with cb_tick() after every clock move and with none (lazy).
#
#   make test-lib-model   the regression scenarios + MODEL_TEST_SEQS random
#                         sequences, plain and under ASan+UBSan (seconds)
#   make fuzz-model       MODEL_FUZZ_SEQS sequences on the plain build
#
# The seed is printed; MODEL_SEED=<n> repeats a run, MODEL_REPLAY=<n> replays
# the one sequence a mismatch names.

MODEL_DIR       := tests/lib/model
MODEL_TEST_SEQS ?= 3000
MODEL_ASAN_SEQS ?= 1000
MODEL_FUZZ_SEQS ?= 1000000
MODEL_LIMIT_S   ?= 300

TEST_SUITES += lib-model

$(BUILD)/%/tests/model_test: $(MODEL_DIR)/model_test.c $(BUILD)/%/libcb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$*) -o $@ $< $(BUILD)/$*/libcb.a $(LIBCB_LIBS) -lm

.PHONY: test-lib-model fuzz-model
test-lib-model: $(BUILD)/rel/tests/model_test $(BUILD)/asan/tests/model_test
	@echo "-- lib-model (rel)"; \
	MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_TEST_SEQS)} timeout $(MODEL_LIMIT_S) $(BUILD)/rel/tests/model_test; r1=$$?; \
	echo "-- lib-model (asan+ubsan)"; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_ASAN_SEQS)} timeout $(MODEL_LIMIT_S) $(BUILD)/asan/tests/model_test; r2=$$?; \
	test $$r1 -eq 0 -a $$r2 -eq 0

fuzz-model: $(BUILD)/rel/tests/model_test
	MODEL_SEQS=$${MODEL_SEQS:-$(MODEL_FUZZ_SEQS)} $(BUILD)/rel/tests/model_test
