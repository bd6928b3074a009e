# mk/prometheus.mk -- the Prometheus rules of scripts/prometheus/ (docs/metrics.md).
#
#   make test-prometheus   promtool check rules scripts/prometheus/rules.yml, then
#                          promtool test rules scripts/prometheus/rules_test.yml (one
#                          check per test group), and that every alert is tested
#                          firing and not firing and every recording rule has a test;
#                          ends with "prometheus: N passed, N failed"
#
# No build needed: promtool (Debian's prometheus package, scripts/setup.sh) is the
# whole test. Prometheus itself scraping the real services with these rules is an
# integration test (tests/integration/test_prometheus.py).

PROM_RULES := scripts/prometheus/rules.yml
PROM_RULES_TEST := scripts/prometheus/rules_test.yml

TEST_SUITES += prometheus
.PHONY: test-prometheus
test-prometheus:
	scripts/prometheus/test-rules.sh $(PROM_RULES) $(PROM_RULES_TEST)
