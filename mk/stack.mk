# mk/stack.mk -- the suite on a single-node Docker Swarm (docker-stack.yaml): `make stack-up` / `make stack-down`, and its e2e suite.
#
#   make stack-up      Swarm if none, images built here, docker stack deploy, every replica running
#   make stack-down    stack removed; the Swarm left if stack-up created it
#   make stack-up STACK_DB=ferretdb     FerretDB in place of the mongo image (no registry)
#   make test-e2e-swarm                 tests/e2e/test_swarm.py: deploy, outage, quorum, teardown
#
# The e2e suite prints "SKIP: ..." and counts as skipped when no Docker engine
# answers. SWARM_LIMIT_S bounds the whole run.

SWARM_LIMIT_S ?= 1500

.PHONY: stack-up stack-down test-e2e-swarm

stack-up:
	scripts/docker/stack.sh up

stack-down:
	scripts/docker/stack.sh down

TEST_SUITES += e2e-swarm

test-e2e-swarm:
	@timeout --kill-after=60 $(SWARM_LIMIT_S) python3 tests/e2e/test_swarm.py
