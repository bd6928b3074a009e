# mk/soak.mk -- the soak: a steady load through the chain while a schedule of
# faults plays (shipment stopped and resumed, shipment and payment killed and
# restarted, the database stopped and restarted), then every acknowledged
# write accounted for from the database (tests/soak/soak.py).
#
#   make soak        SOAK_SECONDS (default 600) at SOAK_RATE requests/s (default 20)
#   make test-soak   the short version make test runs: one cycle, 60 s

SOAK_SECONDS ?= 600
SOAK_RATE    ?= 20

TEST_SUITES += soak

.PHONY: soak test-soak
soak: services-rel $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	FERRETDB_BACKEND=postgresql timeout $$(( $(SOAK_SECONDS) + 300 )) \
	    python3 tests/soak/soak.py --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE)

test-soak: services-rel $(BUILD)/bin/dbtool
	@scripts/ferretdb.sh build >/dev/null
	FERRETDB_BACKEND=postgresql timeout 400 python3 tests/soak/soak.py --seconds 60 --rate 15
