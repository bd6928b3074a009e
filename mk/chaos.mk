# mk/chaos.mk -- chaos experiments as files (experiments/*.json), run by scripts/chaos.py.
#
#   make chaos EXP=experiments/1-fail-fast.json   one experiment against a running stack
#                       (make run's by default; ORDER_URL, PAYMENT_URL, SHIPMENT_URL and
#                       ADMIN_TOKEN, or CHAOS_ARGS="--order ... --token ...", point it elsewhere)
#   make test-chaos     every shipped experiment against make run's stack (classroom profile)
#                       on free ports, and the runner's own failures

TEST_SUITES += chaos

.PHONY: chaos test-chaos
chaos:
	@test -n "$(EXP)" || { echo "make chaos EXP=experiments/<name>.json (see experiments/)"; exit 2; }
	python3 scripts/chaos.py "$(EXP)" $(CHAOS_ARGS)

test-chaos: services-rel
	@scripts/ferretdb.sh build >/dev/null
	timeout 900 python3 tests/chaos/run_experiments.py
