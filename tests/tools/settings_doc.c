/* settings_doc.c -- prints the README's settings tables from svc_settings[].
 *
 *   settings_doc service [PREFIX]   README.md's "Environment variables" table
 *   settings_doc limits [PREFIX]    docs/security.md's limits table
 *   settings_doc self-test          checks the table's own rules; exit 1 when one fails
 *
 * PREFIX is the way from the target file to the repository's root ("../../"
 * for common/svc/README.md): meanings write their links from the root, and
 * this prefix goes before each relative link (before "README.md" for a link
 * to one of the README's own headings). scripts/docs.sh puts the output
 * between the files' marker comments and compares it (make docs, make
 * test-docs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Prints text with PREFIX before each relative Markdown link target. */
static void print_meaning(const char *text, const char *prefix)
{
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (p[0] == ']' && p[1] == '(' && *prefix && strncmp(p + 2, "http", 4)) {
            putchar('(');
            p++;
            printf("%s%s", prefix, p[1] == '#' ? "README.md" : "");
        }
    }
}

/* Prints one row: variable, default, meaning with its range. */
static void print_row(const svc_setting *s, const char *prefix)
{
    printf("| `%s` | ", s->name);
    if (s->doc_default)
        printf("%s", s->doc_default);
    else if (!s->dflt)
        printf("none");
    else if (s->kind == SETTING_WORDS || s->kind == SETTING_STRING)
        printf("`%s`", s->dflt);
    else
        printf("%s", s->dflt);
    printf(" | ");
    print_meaning(s->meaning, prefix);
    if (s->doc_range)
        printf(" (%s)", s->doc_range);
    else if (s->kind == SETTING_INTEGER)
        printf(" (%lld..%lld)", (long long)s->lo, (long long)s->hi);
    else if (s->kind == SETTING_NUMBER)
        printf(" (%g..%g)", s->lo, s->hi);
    printf(" |\n");
}

/* Prints the table of the rows documented in doc. */
static void print_table(unsigned doc, const char *prefix)
{
    if (doc == SETTING_DOC_SERVICE)
        printf("| variable | default | meaning |\n|----------|---------|---------|\n");
    else
        printf("| variable | default | |\n|---|---|---|\n");
    for (size_t i = 0; i < svc_settings_count; i++)
        if (svc_settings[i].docs & doc)
            print_row(&svc_settings[i], prefix);
}

static int passed, failed;

/* Counts one check, naming it when it fails. */
static void expect(int ok, const char *what, const char *name)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: %s\n", name, what);
    }
}

/* Checks what the table promises: each row documented once by name, in a
 * README table, with a meaning and a default the README can show, and an
 * empty environment loading to the defaults (validate.h's among them). */
static int self_test(void)
{
    for (size_t i = 0; i < svc_settings_count; i++) {
        const svc_setting *s = &svc_settings[i];
        int unique = 1;
        for (size_t j = 0; j < i; j++)
            unique &= strcmp(svc_settings[j].name, s->name) != 0;
        expect(unique, "named once", s->name);
        expect(s->docs != 0, "in a README table", s->name);
        expect(s->meaning && *s->meaning && !strchr(s->meaning, '|'),
               "a one-line meaning without '|'", s->name);
        expect(s->kind != SETTING_WORDS || (s->words && s->dflt), "words and a default",
               s->name);
    }
    clearenv();
    svc_spec spec = { .name = "payment", .default_port = 3001 };
    svc_config c;
    char err[256] = "";
    expect(config_load(&c, &spec, err, sizeof err) == 0, err, "an empty environment");
    validate_limits d = VALIDATE_LIMITS_DEFAULT;
    expect(!memcmp(&c.body_limits, &d, sizeof d), "defaults equal VALIDATE_LIMITS_DEFAULT",
           "MAX_BODY_KEYS..MAX_STRING_BYTES");
    printf("the table's rules: %d checks hold, %d fail\n", passed, failed);
    return failed != 0;
}

int main(int argc, char **argv)
{
    const char *prefix = argc > 2 ? argv[2] : "";
    if (argc >= 2 && !strcmp(argv[1], "service")) {
        print_table(SETTING_DOC_SERVICE, prefix);
    } else if (argc >= 2 && !strcmp(argv[1], "limits")) {
        print_table(SETTING_DOC_LIMITS, prefix);
    } else if (argc == 2 && !strcmp(argv[1], "self-test")) {
        return self_test();
    } else {
        fprintf(stderr, "usage: settings_doc service|limits [PREFIX] | self-test\n");
        return 2;
    }
    return 0;
}
