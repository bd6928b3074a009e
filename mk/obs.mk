# mk/obs.mk -- the observability tests (tests/obs): /health, /metrics through promtool,
# /hystrix.stream as SSE, /breaker admin, and the dashboard in headless Chromium.
#
# The observe*.c sources themselves are compiled into the services by mk/svc.mk
# (every common/svc/<room>/*.c); this file only runs their tests against the real
# services, FerretDB and a real browser. Screenshots and logs land in
# build/results/. The suite runs once per flavour in OBS_FLAVOURS: ASan/UBSan
# (memory errors, leaks) and TSan (races between streams and request threads).

OBS_TEST_DIR := tests/obs
# A hung test must not hang the suite: the whole suite gets this many seconds.
OBS_LIMIT_S  ?= 600
OBS_FLAVOURS ?= asan tsan

OBS_UNIT     := $(foreach f,$(OBS_FLAVOURS),$(BUILD)/$(f)/tests/obs/test_observe)

TEST_SUITES += obs

# The in-process unit test (cmocka): observe*.c from libsvc.a, the breaker
# library, civetweb and libcurl, built per sanitizer flavour.
$(BUILD)/%/tests/obs/test_observe: $(OBS_TEST_DIR)/test_observe.c $(BUILD)/%/libsvc.a $(BUILD)/%/libcb.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$*) $(PKG_CFLAGS) -o $@ $< $(BUILD)/$*/libsvc.a \
		$(BUILD)/$*/libcb.a $(PKG_LIBS) -lcivetweb -lcmocka -pthread -lm

.PHONY: test-obs
test-obs: $(addprefix services-,$(OBS_FLAVOURS)) $(BUILD)/bin/dbtool $(OBS_UNIT)
	@scripts/ferretdb.sh build >/dev/null
	@mkdir -p $(BUILD)/results
	@fail=0; for f in $(OBS_FLAVOURS); do \
		echo "---- obs unit ($$f)"; \
		ASAN_OPTIONS=detect_leaks=1 timeout 120 $(BUILD)/$$f/tests/obs/test_observe || fail=1; \
		echo "---- obs ($$f)"; \
		OBS_FLAVOUR=$$f timeout $(OBS_LIMIT_S) python3 $(OBS_TEST_DIR)/run_obs_tests.py || fail=1; \
	done; exit $$fail
