/* act.h -- the table of an experiment's actions and carrying out one of them (act.c). */
#ifndef CHAOS_ACT_H
#define CHAOS_ACT_H

#include "common.h"

/* The actions of the experiment files, one row each (name, fields, act):
 * experiment.c checks a step against its row, chaos_act() calls the row's
 * act. A new action is a row here and its act function. */
extern const chaos_action chaos_actions[];
extern const size_t chaos_nactions;

/* Says what action step s does, in words with its numbers, into buf:
 * "shipment: errors on 30% of requests (502) for 60 s", "payment -> shipment:
 * forced open", "cleared every fault on shipment". Every kind of fault and
 * its fields are said; a kind or field it does not know, as written. */
void act_describe(const chaos_step *s, char *buf, size_t len);

/* Carries out step s in phase ("method" or "rollback"), records it in
 * r->actions and prints a line. Returns true when it succeeded. */
bool chaos_act(chaos_run *r, const chaos_step *s, const char *phase);

/* Puts back the options of every breaker a tune step changed, as they were
 * before the run's first tune of it (r->tuned), and prints a line each.
 * Returns true when every one was put back. The run calls it after its
 * rollbacks, whatever happened. */
bool chaos_tune_restore(chaos_run *r);

#endif
