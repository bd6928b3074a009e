# mk/docker.mk -- the container stack: `make up` / `make down`, and the end-to-end suite on a real Docker engine (tests/e2e).
#
#   make up          build the images and start order, payment, shipment and mongo (detached)
#   make down        stop the stack and remove its containers and network (volumes kept)
#   make test-e2e    build base images if missing, run the whole stack under a
#                    throw-away project, send tests.http, chaos, tear down
#
# The e2e suite prints "SKIP: ..." and counts as skipped when no Docker engine
# answers. E2E_LIMIT_S bounds the whole run.

COMPOSE    ?= docker-compose
E2E_LIMIT_S ?= 1500

.PHONY: up down test-e2e

up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

TEST_SUITES += e2e

test-e2e:
	@timeout --kill-after=60 $(E2E_LIMIT_S) python3 tests/e2e/test_stack.py
