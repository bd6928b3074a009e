# mk/docs.mk -- the README's settings tables, printed from svc_settings[] (config.c).
#
#   make docs        rewrites the tables between the marker comments
#                    (<!-- settings:service --> ... <!-- /settings -->) in
#                    README.md, common/svc/README.md and docs/security.md
#   make test-docs   fails when a table differs from svc_settings[], or the
#                    table breaks its own rules; ends with "N passed, N failed"

DOCS_FILES := README.md common/svc/README.md docs/security.md

$(BUILD)/bin/settings_doc: tests/tools/settings_doc.c common/svc/core/config.c common/svc/core/config.h \
                          common/svc/svc.h common/svc/core/validate.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) $(CFLAGS) $(PKG_CFLAGS) -o $@ tests/tools/settings_doc.c common/svc/core/config.c $(PKG_LIBS)

TEST_SUITES += docs
.PHONY: docs test-docs
docs: $(BUILD)/bin/settings_doc
	SETTINGS_DOC=$(BUILD)/bin/settings_doc scripts/docs.sh $(DOCS_FILES)

test-docs: $(BUILD)/bin/settings_doc
	SETTINGS_DOC=$(BUILD)/bin/settings_doc scripts/docs.sh --check $(DOCS_FILES)
