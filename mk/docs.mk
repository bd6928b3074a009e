# mk/docs.mk -- the settings tables, printed from svc_settings[] (config.c).
#
#   make docs        rewrites the tables between the marker comments
#                    (<!-- settings:service --> ... <!-- /settings -->) in
#                    docs/operations.md, common/svc/README.md and docs/security.md
#   make test-docs   fails when a table differs from svc_settings[], or the
#                    table breaks its own rules; ends with "N passed, N failed";
#                    then every relative link of README.md and docs/*.md must
#                    resolve, to a file and to a heading (tests/tools/check_links.py,
#                    "links: N passed, N failed"); and the experiments of
#                    docs/opening/ (docs/teaching.md's opening times) pass the
#                    runner's --check ("opening: N passed, N failed")

DOCS_FILES := docs/operations.md common/svc/README.md docs/security.md
LINK_FILES := README.md $(wildcard docs/*.md)
OPENING_EXPERIMENTS := $(wildcard docs/opening/*.json)

$(BUILD)/bin/settings_doc: tests/tools/settings_doc.c common/svc/core/config.c common/svc/core/config.h \
                          common/svc/svc.h common/svc/core/validate.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(PKG_CFLAGS) -o $@ tests/tools/settings_doc.c common/svc/core/config.c $(PKG_LIBS)

TEST_SUITES += docs
.PHONY: docs test-docs
docs: $(BUILD)/bin/settings_doc
	SETTINGS_DOC=$(BUILD)/bin/settings_doc scripts/docs.sh $(DOCS_FILES)

test-docs: $(BUILD)/bin/settings_doc $(CHAOS_BIN_rel)
	SETTINGS_DOC=$(BUILD)/bin/settings_doc scripts/docs.sh --check $(DOCS_FILES); \
	rc=$$?; python3 tests/tools/check_links.py $(LINK_FILES) || rc=1; \
	p=0; f=0; for e in $(OPENING_EXPERIMENTS); do \
	    if $(CHAOS_BIN_rel) --check "$$e"; then p=$$((p + 1)); else f=$$((f + 1)); rc=1; fi; \
	done; echo "opening: $$p passed, $$f failed"; exit $$rc
