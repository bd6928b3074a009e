/* validate.c -- checks a request body's shape and keys against a service's spec. */
#include "validate.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *svc_type_name(svc_type t)
{
    switch (t) {
    case SVC_STRING: return "string";
    case SVC_NUMBER: return "number";
    case SVC_ARRAY:  return "array";
    case SVC_OBJECT: return "object";
    case SVC_BOOL:   return "boolean";
    }
    return "value";
}

/* Returns true when item has type t. */
static bool validate_has_type(const cJSON *item, svc_type t)
{
    switch (t) {
    case SVC_STRING: return cJSON_IsString(item);
    case SVC_NUMBER: return cJSON_IsNumber(item);
    case SVC_ARRAY:  return cJSON_IsArray(item);
    case SVC_OBJECT: return cJSON_IsObject(item);
    case SVC_BOOL:   return cJSON_IsBool(item);
    }
    return false;
}

/* Returns true when a database could misread key as an operator or a path. */
static bool validate_key_is_bad(const char *key)
{
    return key[0] == '\0' || key[0] == '$' || strchr(key, '.') != NULL;
}

/* Returns true when s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). cJSON passes a body's bytes through
 * unchecked; the database would refuse the document, so refuse it here by
 * name instead. */
static bool validate_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        int n;
        unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;          /* overlong */
            else if (c == 0xED)
                hi = 0x9F;          /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;          /* overlong */
            else if (c == 0xF4)
                hi = 0x8F;          /* above U+10FFFF */
        } else {
            return false;
        }
        if (p[1] < lo || p[1] > hi)
            return false;
        for (int i = 2; i <= n; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return false;
        p += n + 1;
    }
    return true;
}

/* Checks one value under a container: a string must be UTF-8, a number
 * finite (cJSON reads 1e400 as infinity, which prints as null). */
static int validate_scalar(const cJSON *item, const char *path, char *err, size_t errlen)
{
    if (cJSON_IsString(item) && !validate_utf8(item->valuestring)) {
        snprintf(err, errlen, "the string at \"%.200s\" is not valid UTF-8", path);
        return -1;
    }
    if (cJSON_IsNumber(item) && !isfinite(item->valuedouble)) {
        snprintf(err, errlen, "the number at \"%.200s\" is out of range", path);
        return -1;
    }
    return 0;
}

/* Checks every key and value under node (whose path is path) recursively. */
static int validate_keys(const cJSON *node, const char *path, int depth, char *err, size_t errlen)
{
    if (depth > VALIDATE_MAX_DEPTH) {
        snprintf(err, errlen, "the body is nested deeper than %d levels at \"%.200s\"",
                 VALIDATE_MAX_DEPTH, path);
        return -1;
    }
    const cJSON *child;
    int index = 0;
    cJSON_ArrayForEach(child, node) {
        char sub[512];
        if (cJSON_IsObject(node)) {
            if (!validate_utf8(child->string)) {
                snprintf(err, errlen, "a key at \"%.200s\" is not valid UTF-8",
                         *path ? path : "(top level)");
                return -1;
            }
            if (validate_key_is_bad(child->string)) {
                snprintf(err, errlen, "key \"%.200s\" at \"%.200s\" is not allowed: keys must be "
                         "non-empty, must not start with '$' and must not contain '.'",
                         child->string, *path ? path : "(top level)");
                return -1;
            }
            snprintf(sub, sizeof sub, "%s%s%.200s", path, *path ? "." : "", child->string);
        } else {
            snprintf(sub, sizeof sub, "%s[%d]", path, index);
        }
        index++;
        if (validate_scalar(child, sub, err, errlen))
            return -1;
        if ((cJSON_IsObject(child) || cJSON_IsArray(child)) &&
            validate_keys(child, sub, depth + 1, err, errlen))
            return -1;
    }
    return 0;
}

/* Checks the spec's required fields and their types. */
static int validate_required(const cJSON *body, const svc_spec *spec, char *err, size_t errlen)
{
    for (const svc_field *f = spec->required; f < spec->required + SVC_MAX_FIELDS && f->name; f++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(body, f->name);
        if (!item) {
            snprintf(err, errlen, "field \"%s\" is required (%s)", f->name, svc_type_name(f->type));
            return -1;
        }
        if (!validate_has_type(item, f->type)) {
            snprintf(err, errlen, "field \"%s\" must be a %s", f->name, svc_type_name(f->type));
            return -1;
        }
    }
    return 0;
}

int validate_depth(const char *text, size_t len, char *err, size_t errlen)
{
    int depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > VALIDATE_MAX_DEPTH) {
                snprintf(err, errlen, "the body is nested deeper than %d levels (at byte %zu)",
                         VALIDATE_MAX_DEPTH, i);
                return -1;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

int validate_body(const cJSON *body, const svc_spec *spec, char *err, size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -1;
    }
    static const char *const reserved[] = { "_id", "_meta" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(body, reserved[i])) {
            snprintf(err, errlen, "key \"%s\" is reserved for the server's fields", reserved[i]);
            return -1;
        }
    }
    if (validate_keys(body, "", 1, err, errlen))
        return -1;
    return validate_required(body, spec, err, errlen);
}
