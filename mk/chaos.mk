# mk/chaos.mk -- chaos experiments as files (experiments/*.json), run by the C runner
# $(BUILD)/bin/chaos (chaos/*.c, on libcurl, cJSON and libmongoc).
#
#   make chaos EXP=experiments/1-fail-fast.json   one experiment against a running stack
#                       (make run's by default; ORDER_URL, PAYMENT_URL, SHIPMENT_URL,
#                       ADMIN_TOKEN and MONGO_URL, or CHAOS_ARGS="--order ... --token ...",
#                       point it elsewhere)
#   make chaos-load CHAOS_RATE=10/s CHAOS_FOR=120  a load alone on order (chaos --load): improvise with
#                       curl PUT /chaos or the dashboard, every change is drawn
#   make chaos-halt     clear every fault and close every breaker on every service (chaos --halt)
#   make test-chaos     every shipped experiment against make run's stack (classroom profile)
#                       on free ports, two of them again on the ASan+UBSan build, and the
#                       runner's own failures
#
# The runner is built per flavour like the services: $(BUILD)/bin/chaos (rel),
# $(BUILD)/asan/bin/chaos (ASan+UBSan, which test-chaos also runs) and
# $(BUILD)/tsan/bin/chaos (ThreadSanitizer, for a run by hand).

CHAOS_SRCS := $(wildcard chaos/*.c)
# services.h, the services of services.tsv as C rows (chaos/services.awk), is made
# once for every flavour.
CHAOS_GEN := $(BUILD)/gen/chaos
CHAOS_HDRS := $(wildcard chaos/*.h) $(CHAOS_GEN)/services.h common/svc/base/dynbuf.h common/svc/base/monotime.h \
              common/svc/lab/faults_check.h
# the services' own objects the runner links: the growable buffer, and the
# fault table with its parser (lab/faults.c, on base/random.c), so that
# --check reads every fault body as PUT /chaos does
CHAOS_SVC_OBJS = $(addprefix $(BUILD)/$(1)/chaos/,base/dynbuf.o lab/faults.o base/random.o)
CHAOS_BIN_rel  := $(BUILD)/bin/chaos
CHAOS_BIN_asan := $(BUILD)/asan/bin/chaos
CHAOS_BIN_tsan := $(BUILD)/tsan/bin/chaos

$(CHAOS_GEN)/services.h: services.tsv chaos/services.awk
	@mkdir -p $(@D)
	awk -f chaos/services.awk services.tsv > $@.tmp && mv -f $@.tmp $@

# $(1) = flavour: objects under $(BUILD)/$(1)/chaos/, the binary $(CHAOS_BIN_$(1)).
define chaos_flavour
$(BUILD)/$(1)/chaos/%.o: chaos/%.c $(CHAOS_HDRS)
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) -I$(CHAOS_GEN) $(PKG_CFLAGS) -c $$< -o $$@

# the services' growable buffer (common/svc/base/dynbuf.c), for answers and stream lines
$(BUILD)/$(1)/chaos/base/dynbuf.o: common/svc/base/dynbuf.c common/svc/base/dynbuf.h
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) -c $$< -o $$@

# the fault table and parser (common/svc/lab/faults.c) and the random numbers it draws from
$(BUILD)/$(1)/chaos/lab/faults.o: common/svc/lab/faults.c common/svc/lab/faults.h common/svc/lab/faults_check.h common/svc/lab/chaos.h
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) $(PKG_CFLAGS) -c $$< -o $$@

$(BUILD)/$(1)/chaos/base/random.o: common/svc/base/random.c common/svc/base/random.h
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(SAN_$(1)) -c $$< -o $$@

$(CHAOS_BIN_$(1)): $(patsubst chaos/%.c,$(BUILD)/$(1)/chaos/%.o,$(CHAOS_SRCS)) $(call CHAOS_SVC_OBJS,$(1))
	@mkdir -p $$(@D)
	$(CC) $(CFLAGS) $(SAN_$(1)) -o $$@ $$^ $$(PKG_LIBS) -pthread -lm
endef
$(foreach f,rel asan tsan,$(eval $(call chaos_flavour,$(f))))
.PRECIOUS: $(foreach f,rel asan tsan,$(BUILD)/$(f)/chaos/%.o)

all: $(CHAOS_BIN_rel)

TEST_SUITES += chaos

.PHONY: chaos chaos-load chaos-halt test-chaos
chaos: $(CHAOS_BIN_rel)
	@test -n "$(EXP)" || { echo "make chaos EXP=experiments/<name>.json (see experiments/)"; exit 2; }
	$(CHAOS_BIN_rel) "$(EXP)" $(CHAOS_ARGS)

CHAOS_RATE ?= 10/s
CHAOS_FOR ?= 60
chaos-load: $(CHAOS_BIN_rel)
	$(CHAOS_BIN_rel) --load "$(CHAOS_RATE)" --for "$(CHAOS_FOR)" $(CHAOS_ARGS)

chaos-halt: $(CHAOS_BIN_rel)
	$(CHAOS_BIN_rel) --halt $(CHAOS_ARGS)

test-chaos: services-rel $(CHAOS_BIN_rel) $(CHAOS_BIN_asan)
	@scripts/ferretdb.sh build >/dev/null
	timeout 1200 python3 tests/chaos/run_experiments.py
