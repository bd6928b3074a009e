/* act.h -- the table of an experiment's actions and carrying out one of them (act.c). */
#ifndef CHAOS_ACT_H
#define CHAOS_ACT_H

#include "common.h"

/* The actions of the experiment files, one row each (name, fields, act):
 * experiment.c checks a step against its row, chaos_act() calls the row's
 * act. A new action is a row here and its act function. */
extern const chaos_action chaos_actions[];
extern const size_t chaos_nactions;

/* Carries out step s in phase ("method" or "rollback"), records it in
 * r->actions and prints a line. Returns true when it succeeded. */
bool chaos_act(chaos_run *r, const chaos_step *s, const char *phase);

/* Puts back the options of every breaker a tune step changed, as they were
 * before the run's first tune of it (r->tuned), and prints a line each.
 * Returns true when every one was put back. The run calls it after its
 * rollbacks, whatever happened. */
bool chaos_tune_restore(chaos_run *r);

#endif
