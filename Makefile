# Makefile -- build, test, run and benchmark the resilience suite.
#
#   make            build the breaker library and the three services
#   make test       installs what is missing, then every test suite (what CI runs);
#                   ends with "N passed, N failed, N skipped"
#   make run        the whole suite on this machine: FerretDB + order, payment, shipment
#   make bench      the breaker library's benchmark
#   make bench-services  the services under keep-alive load (wrk), beside a bare civetweb and the database alone, and what tracing costs
#   make bench-compare REF=<commit> [ROUNDS=3]  the chain's benchmark on REF's services and on this tree's, side by side
#   make soak       a steady load while faults play, then every acknowledged write accounted for
#   make chaos EXP=experiments/<name>.json   one chaos experiment against a running stack
#   make up / down  the same stack under docker-compose
#   make stack-up / stack-down  several replicas of each on a single-node Docker Swarm
#
# Each part keeps its rules in mk/*.mk; this file holds what they share.

CC       ?= cc
BUILD    ?= build
WARN     := -Wall -Wextra -Werror
CSTD     := -std=c11 -D_GNU_SOURCE
OPT      ?= -O2 -g
# The services' runtime: svc.c on top, then its rooms (common/svc/README.md);
# every header is found by its bare name.
SVC_ROOMS   := cluster core observe lab log http base
SVC_INCLUDE := -Icommon/svc $(addprefix -Icommon/svc/,$(SVC_ROOMS))
CFLAGS_BASE := $(CSTD) $(WARN) -pthread -Icommon/include $(SVC_INCLUDE)
CFLAGS   ?= $(OPT)
PKGS     := libmongoc-1.0 libcjson libcurl
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# Sanitizer flavours: every object is built once per flavour under $(BUILD)/<flavour>.
SAN_asan := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_tsan := -fsanitize=thread
SAN_rel  :=

.PHONY: all test run bench up down clean setup
all:

include mk/*.mk

# Every suite, in order, each allowed to fail without stopping the others;
# the script prints one summary line at the end and fails if any suite did.
# Foundations first: the library, then the services, then what builds on them.
SUITE_ORDER := docs prometheus lib-unit lib-stress lib-opossum lib-model lib-quorum fuzz-replay integration soak chaos obs e2e e2e-swarm
test:
	@scripts/setup.sh
	@scripts/run-tests.sh $(filter $(TEST_SUITES),$(SUITE_ORDER)) $(filter-out $(SUITE_ORDER),$(TEST_SUITES))

setup:
	scripts/setup.sh

clean:
	rm -rf $(BUILD)
