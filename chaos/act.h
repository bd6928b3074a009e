/* act.h -- carrying out one action of an experiment (act.c). */
#ifndef CHAOS_ACT_H
#define CHAOS_ACT_H

#include "common.h"

/* Carries out step s in phase ("method" or "rollback"), records it in
 * r->actions and prints a line. Returns true when it succeeded. */
bool chaos_act(chaos_run *r, const chaos_step *s, const char *phase);

#endif
