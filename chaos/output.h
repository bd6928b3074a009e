/* output.h -- what a run leaves behind: journal.json (journal.c) and timeline.svg (svg.c). */
#ifndef CHAOS_OUTPUT_H
#define CHAOS_OUTPUT_H

#include "common.h"

/* Writes r->out/journal.json. Returns 0, or -1 with a message in err. */
int chaos_journal_write(const chaos_run *r, char *err, size_t errlen);

/* Writes r->out/timeline.svg. Returns 0, or -1 with a message in err. */
int chaos_svg_write(const chaos_run *r, char *err, size_t errlen);

#endif
