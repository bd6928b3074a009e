# mk/lib-quorum.mk -- unit tests of the breaker library's quorum module
# (common/include/cb_quorum.h): several replicas on an in-memory store and a
# manual clock, plain and under ASan+UBSan (the module has no threads).
#
#   make test-lib-quorum

QUORUM_DIR := tests/lib/quorum

TEST_SUITES += lib-quorum

$(BUILD)/%/tests/lib_quorum: $(wildcard $(QUORUM_DIR)/*.c) $(BUILD)/%/libcb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$*) -o $@ $(filter %.c,$^) $(BUILD)/$*/libcb.a $(LIBCB_LIBS) $(CMOCKA_LIBS)

.PHONY: test-lib-quorum
test-lib-quorum: $(BUILD)/rel/tests/lib_quorum $(BUILD)/asan/tests/lib_quorum
	@echo "-- lib-quorum (rel)"; $(BUILD)/rel/tests/lib_quorum; r1=$$?; \
	echo "-- lib-quorum (asan+ubsan)"; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $(BUILD)/asan/tests/lib_quorum; r2=$$?; \
	test $$r1 -eq 0 -a $$r2 -eq 0
