/* faults_check.h -- checking a PUT /chaos body without applying it: the one entry point the chaos runner links (faults.c). */
#ifndef SVC_LAB_FAULTS_CHECK_H
#define SVC_LAB_FAULTS_CHECK_H

#include <cJSON.h>
#include <stddef.h>

/* Checks body as PUT /chaos would (the same table and parser), applying
 * nothing. Returns 0, or -1 with the service's own sentence naming the
 * fault or field in err ("unknown fault \"eror\"; the faults are ..."). */
int chaos_faults_check(const cJSON *body, char *err, size_t errlen);

#endif
