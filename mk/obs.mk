# mk/obs.mk -- the observability tests (tests/obs): /health, /metrics through promtool,
# /hystrix.stream as SSE, /breaker admin, and the dashboard in headless Chromium.
#
# The observe*.c sources themselves are compiled into the services by mk/svc.mk
# (every common/svc/*.c); this file only runs their tests against the real
# services, FerretDB and a real browser. Screenshots and logs land in
# build/results/. The services run in the ASan/UBSan flavour when it is built
# (OBS_FLAVOUR=rel|asan overrides).

OBS_TEST_DIR := tests/obs
# A hung test must not hang the suite: the whole suite gets this many seconds.
OBS_LIMIT_S  ?= 600

TEST_SUITES += obs

.PHONY: test-obs
test-obs: services-rel services-asan $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	@mkdir -p $(BUILD)/results
	timeout $(OBS_LIMIT_S) python3 $(OBS_TEST_DIR)/run_obs_tests.py
