/* validate.c -- checks a request body's shape and keys against a service's spec.
 *
 * Two passes. validate_text() reads the raw text before it is parsed: what
 * the parser would lose or must not be given (a NUL, which cJSON silently
 * cuts a string at; nesting that would exhaust a worker's stack) and what is
 * too costly to parse or store (more keys or elements than the limits),
 * refused at the byte where it is seen, with no allocation. validate_body()
 * walks the parsed tree: keys a database would misread, UTF-8, finite
 * numbers, string lengths and the spec's fields. Nothing refused here ever
 * reaches the database or its breaker.
 */
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

/* Fills *why for a 413 over the limit name whose value is value. */
static void refuse_limit(validate_refusal *why, const char *name, int value)
{
    why->status = 413;
    why->limit = name;
    why->value = value;
}

/* Returns -1 with a 413 naming MAX_STRING_BYTES when s (the string at path
 * or, with is_key, a key of the object at path) is longer than the limit;
 * 0 otherwise or without limits. */
static int validate_length(const char *s, bool is_key, const char *path,
                           const validate_limits *limits, validate_refusal *why, char *err,
                           size_t errlen)
{
    if (!limits || strlen(s) <= (size_t)limits->string_bytes)
        return 0;
    refuse_limit(why, "MAX_STRING_BYTES", limits->string_bytes);
    snprintf(err, errlen, "%s \"%.200s\" is longer than %d bytes (MAX_STRING_BYTES)",
             is_key ? "a key in" : "the string at", *path ? path : "(top level)",
             limits->string_bytes);
    return -1;
}

/* Checks one value under a container: a string must be UTF-8 and no longer
 * than the limit, a number finite (cJSON reads 1e400 as infinity, which
 * prints as null). */
static int validate_scalar(const cJSON *item, const char *path, const validate_limits *limits,
                           validate_refusal *why, char *err, size_t errlen)
{
    if (cJSON_IsString(item) &&
        validate_length(item->valuestring, false, path, limits, why, err, errlen))
        return -1;
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
static int validate_keys(const cJSON *node, const char *path, int depth,
                         const validate_limits *limits, validate_refusal *why, char *err,
                         size_t errlen)
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
            if (validate_length(child->string, true, path, limits, why, err, errlen))
                return -1;
        } else {
            snprintf(sub, sizeof sub, "%s[%d]", path, index);
        }
        index++;
        if (validate_scalar(child, sub, limits, why, err, errlen))
            return -1;
        if ((cJSON_IsObject(child) || cJSON_IsArray(child)) &&
            validate_keys(child, sub, depth + 1, limits, why, err, errlen))
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

/* One open object or array while validate_text() scans. */
typedef struct scan_level {
    char kind;             /* '{' or '[' */
    bool want_item;        /* the next value (array) or string (object: a key) starts an item */
    int items;             /* keys (object) or elements (array) so far */
    const char *key;       /* object: the current key as sent (escapes unread) */
    size_t key_len;
} scan_level;

/* The state of validate_text(): the open containers (level[1..depth]) and
 * the string being read. */
typedef struct scan {
    const char *text;
    scan_level level[VALIDATE_MAX_DEPTH + 1];
    int depth;
    long long body_keys;
    size_t str_start;      /* the opening quote of the string being read */
    bool str_is_key;
    long long nul_at;      /* the first NUL in that string (byte offset), -1 = none */
    bool in_string;        /* byte i is inside a string */
    bool escaped;          /* and follows a backslash */
} scan;

/* Appends n bytes of JSON text s to buf (cap bytes, *pos used) for a
 * message: printable ASCII as is, every other byte as '?' (the text is not
 * yet known to be UTF-8), at most 64 bytes then "...". Never overflows. */
static void scan_append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    size_t shown = n > 64 ? 64 : n;
    for (size_t i = 0; i < shown && *pos + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[(*pos)++] = c >= 0x20 && c < 0x7F ? (char)c : '?';
    }
    for (int i = 0; n > shown && i < 3 && *pos + 1 < cap; i++)
        buf[(*pos)++] = '.';
    buf[*pos] = '\0';
}

/* Writes into buf (cap bytes) the path of the place the scan is at, down to
 * level upto ("payment.shipment.directions", "items[3]"), or "(top level)"
 * when upto is 0. Keys appear as sent. */
static const char *scan_path(const scan *sc, int upto, char *buf, size_t cap)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int d = 1; d <= upto && pos + 16 < cap; d++) {
        const scan_level *l = &sc->level[d];
        if (l->kind == '{') {
            if (d > 1)
                scan_append(buf, cap, &pos, ".", 1);
            scan_append(buf, cap, &pos, l->key ? l->key : "", l->key ? l->key_len : 0);
        } else {
            pos += (size_t)snprintf(buf + pos, cap - pos, "[%d]", l->items > 0 ? l->items - 1 : 0);
            if (pos >= cap)
                pos = cap - 1;
        }
    }
    if (!buf[0])
        snprintf(buf, cap, "(top level)");
    return buf;
}

/* Counts a new item (a key, or an array's element) at the current level
 * when one starts there. Returns 0, or -1 with a 413 naming the limit
 * passed. */
static int scan_item(scan *sc, const validate_limits *limits, size_t at, validate_refusal *why,
                     char *err, size_t errlen)
{
    if (sc->depth == 0)
        return 0;
    scan_level *l = &sc->level[sc->depth];
    if (!l->want_item)
        return 0;
    l->want_item = false;
    l->items++;
    if (l->kind == '{')
        sc->body_keys++;
    if (!limits)
        return 0;
    char path[256];
    if (l->kind == '{' && l->items > limits->object_keys) {
        refuse_limit(why, "MAX_OBJECT_KEYS", limits->object_keys);
        snprintf(err, errlen, "the object at \"%s\" has more than %d keys (MAX_OBJECT_KEYS, "
                 "at byte %zu)", scan_path(sc, sc->depth - 1, path, sizeof path),
                 limits->object_keys, at);
        return -1;
    }
    if (l->kind == '{' && sc->body_keys > limits->body_keys) {
        refuse_limit(why, "MAX_BODY_KEYS", limits->body_keys);
        snprintf(err, errlen, "the body has more than %d keys in all (MAX_BODY_KEYS, at byte %zu)",
                 limits->body_keys, at);
        return -1;
    }
    if (l->kind == '[' && l->items > limits->array_elements) {
        refuse_limit(why, "MAX_ARRAY_ELEMENTS", limits->array_elements);
        snprintf(err, errlen, "the array at \"%s\" has more than %d elements (MAX_ARRAY_ELEMENTS, "
                 "at byte %zu)", scan_path(sc, sc->depth - 1, path, sizeof path),
                 limits->array_elements, at);
        return -1;
    }
    return 0;
}

/* Refuses the string that ended at byte end (or the text's end) because it
 * holds a NUL at sc->nul_at, naming the key or the field. Returns -1. */
static int scan_refuse_nul(const scan *sc, size_t end, validate_refusal *why, char *err,
                           size_t errlen)
{
    char path[256];
    why->status = 400;
    if (sc->str_is_key) {
        char key[96];
        size_t pos = 0;
        key[0] = '\0';
        scan_append(key, sizeof key, &pos, sc->text + sc->str_start + 1, end - sc->str_start - 1);
        snprintf(err, errlen, "the key \"%s\" in \"%s\" contains a NUL character (byte %lld), "
                 "which cannot be stored", key, scan_path(sc, sc->depth - 1, path, sizeof path),
                 sc->nul_at);
    } else {
        snprintf(err, errlen, "the string at \"%s\" contains a NUL character (byte %lld), "
                 "which cannot be stored", scan_path(sc, sc->depth, path, sizeof path), sc->nul_at);
    }
    return -1;
}

/* Returns true when c is JSON whitespace (RFC 8259: space, tab, LF, CR). */
static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Reads byte c at i of a string: escapes, the closing quote (a key's
 * name is kept), NULs and raw control characters. Returns 0, or -1 with
 * err (and *why) set. */
static int scan_string_byte(scan *sc, unsigned char c, size_t i, size_t len, validate_refusal *why,
                            char *err, size_t errlen)
{
    const char *text = sc->text;
    if (sc->escaped) {
        sc->escaped = false;
        if (c == 'u' && len - i > 4 && !memcmp(text + i + 1, "0000", 4) && sc->nul_at < 0)
            sc->nul_at = (long long)i - 1;
    } else if (c == '\\') {
        sc->escaped = true;
    } else if (c == '"') {
        sc->in_string = false;
        if (sc->nul_at >= 0)
            return scan_refuse_nul(sc, i, why, err, errlen);
        scan_level *l = &sc->level[sc->depth];
        if (sc->str_is_key) {
            l->key = text + sc->str_start + 1;
            l->key_len = i - sc->str_start - 1;
        }
    } else if (c == 0) {
        if (sc->nul_at < 0)
            sc->nul_at = (long long)i;
    } else if (c < 0x20) {
        char path[256];
        snprintf(err, errlen, "the body is not valid JSON: a raw control character (0x%02X) "
                 "in the string at \"%s\" (byte %zu) must be escaped", c,
                 scan_path(sc, sc->str_is_key ? sc->depth - 1 : sc->depth, path, sizeof path), i);
        return -1;
    }
    return 0;
}

/* Reads byte c at i outside any string: opens a string, opens or closes a
 * container, counts an item against limits. Returns 0, or -1 with err (and
 * *why) set. */
static int scan_structure_byte(scan *sc, unsigned char c, size_t i, const validate_limits *limits,
                               validate_refusal *why, char *err, size_t errlen)
{
    if (json_space((char)c))
        return 0;
    if (c < 0x20) {
        snprintf(err, errlen, "the body is not valid JSON: a %s (0x%02X) at byte %zu",
                 c ? "raw control character" : "NUL byte", c, i);
        return -1;
    }
    scan_level *l = &sc->level[sc->depth];
    bool in_array = sc->depth > 0 && l->kind == '[';
    if (c == '"') {
        sc->in_string = true;
        sc->str_start = i;
        sc->nul_at = -1;
        sc->str_is_key = sc->depth > 0 && l->kind == '{' && l->want_item;
        if ((in_array || sc->str_is_key) && scan_item(sc, limits, i, why, err, errlen))
            return -1;
    } else if (c == '{' || c == '[') {
        if (in_array && scan_item(sc, limits, i, why, err, errlen))
            return -1;
        if (sc->depth == VALIDATE_MAX_DEPTH) {
            snprintf(err, errlen, "the body is nested deeper than %d levels (at byte %zu)",
                     VALIDATE_MAX_DEPTH, i);
            return -1;
        }
        sc->level[++sc->depth] = (scan_level){ .kind = (char)c, .want_item = true };
    } else if (c == '}' || c == ']') {
        if (sc->depth > 0)
            sc->depth--;
    } else if (c == ',') {
        if (sc->depth > 0)
            l->want_item = true;
    } else if (c != ':' && in_array) {
        return scan_item(sc, limits, i, why, err, errlen);   /* a number, true, false, null */
    }
    return 0;
}

int validate_text(const char *text, size_t len, const validate_limits *limits,
                  validate_refusal *why, char *err, size_t errlen)
{
    scan sc = { .text = text, .nul_at = -1 };
    why->status = 400;
    why->limit = NULL;
    why->value = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        int rc = sc.in_string ? scan_string_byte(&sc, c, i, len, why, err, errlen)
                              : scan_structure_byte(&sc, c, i, limits, why, err, errlen);
        if (rc)
            return rc;
    }
    if (sc.in_string && sc.nul_at >= 0)
        return scan_refuse_nul(&sc, len, why, err, errlen);
    return 0;
}

int validate_body(const cJSON *body, const svc_spec *spec, const validate_limits *limits,
                  validate_refusal *why, char *err, size_t errlen)
{
    why->status = 400;
    why->limit = NULL;
    why->value = 0;
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -1;
    }
    static const char *const reserved[] = { "_id", "_meta", "_key" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (cJSON_GetObjectItemCaseSensitive(body, reserved[i])) {
            snprintf(err, errlen, "key \"%s\" is reserved for the server's fields", reserved[i]);
            return -1;
        }
    }
    if (validate_keys(body, "", 1, limits, why, err, errlen))
        return -1;
    return validate_required(body, spec, err, errlen);
}
