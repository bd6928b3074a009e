# mk/fuzz.mk -- libFuzzer harnesses for every parser of outside input (tests/fuzz),
# `make fuzz` to search for new inputs, and the fuzz-replay suite that replays
# the kept corpus in `make test`.
#
# Built with Debian's clang (packages clang and libclang-rt-14-dev, listed in
# scripts/packages.d/fuzz.txt): every common/src and common/svc/<room> source is
# compiled again under $(BUILD)/fuzz with coverage instrumentation and
# ASan+UBSan, and each harness is linked against them with libFuzzer.
#
#   make fuzz                    each harness FUZZ_SECONDS (default 120) in turn; new
#                                inputs that add coverage are merged into tests/fuzz/corpus
#   make fuzz FUZZ_HARNESSES=body FUZZ_SECONDS=600   one harness, longer
#   make test-fuzz-replay        every corpus and regression input once (part of make test)
#
# A crash leaves its input in $(BUILD)/fuzz/artifacts/<harness>/; once fixed,
# copy it into tests/fuzz/regress/<harness>/ so the replay keeps proving it.

FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 120
# chaos (PUT /chaos's body) exists where the runtime faults do (common/svc/lab/chaos.c)
FUZZ_ALL       := body query config state wire $(if $(wildcard common/svc/lab/chaos.c),chaos)
FUZZ_HARNESSES ?= $(FUZZ_ALL)
FUZZ_DIR       := $(BUILD)/fuzz
FUZZ_SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS     = $(CSTD) $(WARN) -pthread -Icommon/include $(SVC_INCLUDE) -Itests/fuzz -O1 -g \
                  $(FUZZ_SAN) $(PKG_CFLAGS)
FUZZ_LIBS       = $(PKG_LIBS) -lcivetweb -pthread -lm
FUZZ_OBJS      := $(patsubst common/%.c,$(FUZZ_DIR)/obj/%.o,$(wildcard common/src/*.c common/svc/*.c common/svc/*/*.c)) \
                  $(FUZZ_DIR)/obj/fuzz_specs.o

$(FUZZ_DIR)/obj/%.o: common/%.c $(LIBCB_HDRS) $(SVC_HDRS) $(SVC_ASSETS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/obj/fuzz_specs.o: tests/fuzz/fuzz_specs.c tests/fuzz/fuzz_specs.h $(SVC_HDRS) \
		order/main.c payment/main.c shipment/main.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/libfuzzsvc.a: $(FUZZ_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(FUZZ_DIR)/bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_specs.h tests/fuzz/fuzz_check.h $(FUZZ_DIR)/libfuzzsvc.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_DIR)/libfuzzsvc.a $(FUZZ_LIBS)

.PRECIOUS: $(FUZZ_DIR)/obj/%.o

.PHONY: fuzz fuzz-build test-fuzz-replay
fuzz-build: $(addprefix $(FUZZ_DIR)/bin/fuzz_,$(FUZZ_ALL))

# Each harness in turn: new inputs land in $(FUZZ_DIR)/work/<harness>, then
# tests/fuzz/merge.sh keeps the hand-written seeds and the fewest found inputs
# that add coverage, so the repository's corpus stays small. Stops at the
# first harness that finds a crash.
fuzz: fuzz-build
	@for h in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_DIR)/work/$$h $(FUZZ_DIR)/artifacts/$$h tests/fuzz/corpus/$$h; \
		echo "---- fuzz $$h for $(FUZZ_SECONDS) s"; \
		$(FUZZ_DIR)/bin/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=4096 \
			-print_final_stats=1 -dict=tests/fuzz/$$h.dict \
			-artifact_prefix=$(FUZZ_DIR)/artifacts/$$h/ \
			$(FUZZ_DIR)/work/$$h tests/fuzz/corpus/$$h $$(ls -d tests/fuzz/regress/$$h 2>/dev/null) \
			2>$(FUZZ_DIR)/$$h.log; rc=$$?; \
		grep -aE '^#[0-9]+.*DONE|^stat::|^SUMMARY|^==[0-9]+== ERROR|check failed' $(FUZZ_DIR)/$$h.log; \
		if [ $$rc -ne 0 ]; then \
			echo "fuzz $$h: STOPPED (exit $$rc): a crash or a failed check leaves its input in $(FUZZ_DIR)/artifacts/$$h/; the log is $(FUZZ_DIR)/$$h.log"; \
			exit 1; \
		fi; \
		echo -n "fuzz $$h: "; \
		tests/fuzz/merge.sh $$h $(FUZZ_DIR)/bin/fuzz_$$h $(FUZZ_DIR)/work/$$h || { \
			echo "fuzz $$h: merge failed"; exit 1; }; \
	done

TEST_SUITES += fuzz-replay

# Replays tests/fuzz/corpus/<h> and tests/fuzz/regress/<h> through each
# harness once: one test per harness. Without a clang that can link libFuzzer
# every harness is skipped, loudly.
test-fuzz-replay:
	@if ! tests/fuzz/have-libfuzzer.sh $(FUZZ_CC); then \
		echo "SKIP fuzz-replay: $(FUZZ_CC) cannot build libFuzzer harnesses (install clang and libclang-rt-14-dev: scripts/setup.sh)"; \
		echo "0 passed, 0 failed, $(words $(FUZZ_ALL)) skipped"; \
		exit 0; \
	fi; \
	mkdir -p $(BUILD); \
	$(MAKE) --no-print-directory fuzz-build >$(BUILD)/fuzz-build.log 2>&1 || { \
		cat $(BUILD)/fuzz-build.log; echo "0 passed, $(words $(FUZZ_ALL)) failed, 0 skipped"; exit 1; }; \
	tests/fuzz/replay.sh $(FUZZ_DIR)/bin $(FUZZ_ALL)
