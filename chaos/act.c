/* act.c -- the actions of an experiment: a fault set or cleared over /chaos, a breaker forced or tuned, a process stopped or resumed, one of make run's processes killed or restarted, a shell command, the retries or the hedging of a call to the next hop or the load shedding of POST /create set.
 *
 * chaos_actions, at the end, is their one table: each row names an action,
 * the fields it takes (experiment.c checks them, a check per kind of field)
 * and its act function, which chaos_act() calls. A new action is a row there
 * and its function.
 */
#include "act.h"
#include "net.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_LIMIT_S 120
#define RUN_KEEP 500
/* restart waits at most this long for the process to be back and answering */
#define RESTART_LIMIT_S 60

/* The port of a base URL "http://host:port". Returns 0 when there is none. */
static int url_port(const char *url)
{
    const char *colon = strrchr(url, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* Adds the inodes of the sockets listening on port from one /proc/net/tcp* file. */
static void listening_inodes(const char *file, int port, unsigned long *inodes, int *n, int cap)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return;
    char line[512];
    if (!fgets(line, sizeof line, f)) {   /* the header */
        fclose(f);
        return;
    }
    while (fgets(line, sizeof line, f) && *n < cap) {
        char local[128], remote[128], st[8];
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, "%*s %127s %127s %7s %*s %*s %*s %*s %*s %lu", local, remote, st, &inode) != 4)
            continue;
        const char *colon = strrchr(local, ':');
        if (strcmp(st, "0A") == 0 && colon && (int)strtol(colon + 1, NULL, 16) == port)
            inodes[(*n)++] = inode;
    }
    fclose(f);
}

/* The pid of the process of this machine that listens on port, or -1 with a message in err. */
static pid_t port_pid(int port, const char *svc, char *err, size_t errlen)
{
    unsigned long inodes[16];
    int n = 0;
    listening_inodes("/proc/net/tcp", port, inodes, &n, 16);
    listening_inodes("/proc/net/tcp6", port, inodes, &n, 16);
    DIR *proc = n ? opendir("/proc") : NULL;
    pid_t found = -1;
    for (struct dirent *d = proc ? readdir(proc) : NULL; d && found < 0; d = readdir(proc)) {
        if (!isdigit((unsigned char)d->d_name[0]))
            continue;
        char fddir[300];
        snprintf(fddir, sizeof fddir, "/proc/%s/fd", d->d_name);
        DIR *fds = opendir(fddir);
        for (struct dirent *fd = fds ? readdir(fds) : NULL; fd && found < 0; fd = readdir(fds)) {
            char link[600], target[128];
            snprintf(link, sizeof link, "%s/%s", fddir, fd->d_name);
            ssize_t k = readlink(link, target, sizeof target - 1);
            if (k <= 0)
                continue;
            target[k] = '\0';
            unsigned long inode;
            if (sscanf(target, "socket:[%lu]", &inode) != 1)
                continue;
            for (int i = 0; i < n; i++)
                if (inodes[i] == inode)
                    found = (pid_t)atoi(d->d_name);
        }
        if (fds)
            closedir(fds);
    }
    if (proc)
        closedir(proc);
    if (found < 0)
        snprintf(err, errlen,
                 "no process of this machine listens on %s's port %d (stop/resume act on make run's "
                 "stack; use a run action for containers)", svc, port);
    return found;
}

/* Runs command under /bin/sh in its own process group, with RUN_LIMIT_S
 * seconds; its output (stdout and stderr, the last RUN_KEEP bytes) goes to
 * out. Returns the exit status (-1 when it could not start or ran out of time). */
static int run_shell(const char *command, char *out, size_t outlen)
{
    int fds[2];
    out[0] = '\0';
    if (pipe(fds)) {
        snprintf(out, outlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, outlen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char keep[RUN_KEEP + 1];
    size_t kept = 0;
    double deadline = chaos_mono() + RUN_LIMIT_S;
    bool timed_out = false;
    for (;;) {
        double left = deadline - chaos_mono();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int ready = poll(&p, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue;
        char buf[1024];
        ssize_t k = read(fds[0], buf, sizeof buf);
        if (k <= 0)
            break;
        for (ssize_t i = 0; i < k; i++) {       /* keep the tail */
            if (kept == RUN_KEEP) {
                memmove(keep, keep + 1, RUN_KEEP - 1);
                kept--;
            }
            keep[kept++] = buf[i];
        }
    }
    close(fds[0]);
    if (timed_out)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    keep[kept] = '\0';
    if (timed_out) {
        snprintf(out, outlen, "ran out of its %d s and was killed; %s", RUN_LIMIT_S, keep);
        return -1;
    }
    snprintf(out, outlen, "%s", keep);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The pid in <dir>/<name>.<ext> (make run writes "pid" at start and "ready"
 * once the process answers), or -1 when the file is absent or holds none. */
static pid_t pid_file(const char *dir, const char *name, const char *ext)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return pid > 1 ? (pid_t)pid : -1;
}

/* kill (SIGKILL; make run's supervisor restarts the process) or restart
 * (SIGTERM, then wait until a new process of that name answers: its ready
 * file names a new, live pid; RESTART_LIMIT_S at most) of one of make run's
 * processes, found through its pid file. Says what happened in text. Returns
 * 200 when done, 0 when not. */
static long process_signal(chaos_run *r, const chaos_step *s, bool restart, char *text, size_t len)
{
    if (!r->run_dir[0]) {
        snprintf(text, len, "no pid files: kill and restart act on make run's processes, and no service's "
                            "/health names its supervisor; give --run-dir ($DATA_DIR/run)");
        return 0;
    }
    pid_t pid = pid_file(r->run_dir, s->service, "pid");
    if (pid < 0) {
        snprintf(text, len, "%s/%s.pid: absent: %s is not running under make run's supervisor", r->run_dir,
                 s->service, s->service);
        return 0;
    }
    if (kill(pid, restart ? SIGTERM : SIGKILL) != 0) {
        snprintf(text, len, "kill %d: %s", (int)pid, strerror(errno));
        return 0;
    }
    if (!restart) {
        snprintf(text, len, "SIGKILL to %s (pid %d); make run's supervisor restarts it", s->service, (int)pid);
        return 200;
    }
    double start = chaos_mono();
    while (!chaos_signal && chaos_mono() - start < RESTART_LIMIT_S) {
        pid_t back = pid_file(r->run_dir, s->service, "ready");
        if (back > 0 && back != pid && kill(back, 0) == 0) {
            snprintf(text, len, "SIGTERM to %s (pid %d); back as pid %d, answering %.1f s later", s->service,
                     (int)pid, (int)back, chaos_mono() - start);
            return 200;
        }
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    snprintf(text, len, "SIGTERM to %s (pid %d); %s", s->service, (int)pid,
             chaos_signal ? "stopped waiting for it (interrupted)"
                          : "not back and answering within the limit (60 s)");
    return 0;
}

static void record(chaos_run *r, const chaos_step *s, const char *phase, long status, cJSON *answer);

/* Sends the HTTP request of an action; fills *status and *answer (parsed JSON, or a string). */
static void act_http(chaos_run *r, const char *method, const char *url, const cJSON *body, long *status,
                     cJSON **answer)
{
    char *json = body ? cJSON_PrintUnformatted(body) : NULL;
    net_answer a;
    net_request(method, url, json, r->token, 5000, &a);
    free(json);
    *status = a.status;
    if (a.status == 0)
        *answer = cJSON_CreateString(a.error);
    else if (!(*answer = cJSON_Parse(a.body)))
        *answer = cJSON_CreateString(a.body);
    net_answer_free(&a);
}

/* The base URL of the step's service ("service", or the service of its
 * "breaker"), or NULL, with words in *answer, when it names none of them. */
static const char *service_url(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    char svc[32];
    const char *name = s->service ? s->service : s->breaker ? s->breaker : "";
    snprintf(svc, sizeof svc, "%.*s", (int)strcspn(name, "/"), name);
    int i = chaos_service_index(svc);
    if (i >= 0)
        return r->urls[i];
    char text[100];
    snprintf(text, sizeof text, "\"%s\" is none of the services", svc);
    *answer = cJSON_CreateString(text);
    return NULL;
}

/* method on the step's service's /chaos with body (NULL for none); the
 * status, 0 when the service is unknown (its reason in *answer). */
static long act_chaos(chaos_run *r, const chaos_step *s, const char *method, const cJSON *body,
                      cJSON **answer)
{
    const char *base = service_url(r, s, answer);
    long status = 0;
    if (base) {
        char url[600];
        snprintf(url, sizeof url, "%s/chaos", base);
        act_http(r, method, url, body, &status, answer);
    }
    return status;
}

/* fault: PUT /chaos on the service with the step's faults as the body. */
static long act_fault(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    return act_chaos(r, s, "PUT", s->faults, answer);
}

/* clear: DELETE /chaos on the service. */
static long act_clear(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    return act_chaos(r, s, "DELETE", NULL, answer);
}

/* retry, shed, hedge: POST /<action> on the service with the step's
 * settings as the body (the admin token's routes: the retries of its call to
 * the next hop, the load shedding of its POST /create, the hedging of its
 * call to the next hop). */
static long act_settings(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    const char *base = service_url(r, s, answer);
    long status = 0;
    if (base) {
        char url[600];
        snprintf(url, sizeof url, "%s/%s", base, s->action);
        act_http(r, "POST", url, s->settings, &status, answer);
    }
    return status;
}

/* open, close: POST /breaker/<action>?name=<the breaker's full name> on its service. */
static long act_force(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    const char *base = service_url(r, s, answer);
    if (!base)
        return 0;
    const char *name = chaos_ref_name(r, s->breaker);
    char *quoted = curl_easy_escape(NULL, name ? name : "", 0);
    char url[600];
    long status = 0;
    snprintf(url, sizeof url, "%s/breaker/%s?name=%s", base, s->action, quoted ? quoted : "");
    curl_free(quoted);
    act_http(r, "POST", url, NULL, &status, answer);
    return status;
}

/* The URL of route ("open", "options", or "" for GET /breaker) for the
 * step's breaker, by its full name, into url. Returns false, with words in
 * *answer, when its service is unknown. */
static bool breaker_url(chaos_run *r, const chaos_step *s, const char *route, char *url, size_t len,
                        cJSON **answer)
{
    const char *base = service_url(r, s, answer);
    if (!base)
        return false;
    const char *name = chaos_ref_name(r, s->breaker);
    char *quoted = curl_easy_escape(NULL, name ? name : "", 0);
    snprintf(url, len, "%s/breaker%s%s?name=%s", base, route[0] ? "/" : "", route, quoted ? quoted : "");
    curl_free(quoted);
    return true;
}

/* Keeps the options the step's breaker has now (GET /breaker's "options") in
 * r->tuned, unless an earlier tune of this run kept them already: the restore
 * puts back what the run found. Returns true when they are kept. */
static bool tune_remember(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, r->tuned)
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "breaker")), s->breaker) == 0)
            return true;
    char url[600];
    if (!breaker_url(r, s, "", url, sizeof url, answer))
        return false;
    long status;
    cJSON *now = NULL;
    act_http(r, "GET", url, NULL, &status, &now);
    cJSON *options = cJSON_DetachItemFromObjectCaseSensitive(now, "options");
    cJSON_Delete(now);
    if (status != 200 || !cJSON_IsObject(options)) {
        cJSON_Delete(options);
        char text[200];
        snprintf(text, sizeof text, "GET /breaker for %s answered %ld without \"options\" (a service "
                 "older than the runner?); nothing changed", s->breaker, status);
        *answer = cJSON_CreateString(text);
        return false;
    }
    cJSON *kept = cJSON_CreateObject();
    cJSON_AddStringToObject(kept, "breaker", s->breaker);
    cJSON_AddItemToObject(kept, "options", options);
    if (!r->tuned)
        r->tuned = cJSON_CreateArray();
    cJSON_AddItemToArray(r->tuned, kept);
    return true;
}

/* tune: POST /breaker/options?name=<the breaker's full name> with the step's
 * options, after keeping the options it had (chaos_tune_restore puts them back). */
static long act_tune(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    char url[600];
    long status = 0;
    if (tune_remember(r, s, answer) && breaker_url(r, s, "options", url, sizeof url, answer))
        act_http(r, "POST", url, s->options, &status, answer);
    return status;
}

bool chaos_tune_restore(chaos_run *r)
{
    bool all = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, r->tuned) {
        chaos_step s = { .action = "tune", .kind = NULL,
                         .breaker = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "breaker")),
                         .options = cJSON_GetObjectItemCaseSensitive(t, "options"),
                         .why = "the options it had before the run" };
        char url[600];
        long status = 0;
        cJSON *answer = NULL;
        if (breaker_url(r, &s, "options", url, sizeof url, &answer))
            act_http(r, "POST", url, s.options, &status, &answer);
        record(r, &s, "rollback", status, answer);
        all = all && status == 200;
    }
    return all;
}

/* Sends sig to the process listening on the service's port. Returns 200 or 0; words in *answer. */
static long signal_listener(chaos_run *r, const chaos_step *s, int sig, cJSON **answer)
{
    const char *base = service_url(r, s, answer);
    if (!base)
        return 0;
    char text[300];
    long status = 0;
    pid_t pid = port_pid(url_port(base), s->service, text, sizeof text);
    if (pid < 0)
        status = 0;
    else if (kill(pid, sig) != 0)
        snprintf(text, sizeof text, "kill %d: %s", (int)pid, strerror(errno));
    else {
        snprintf(text, sizeof text, "%s to pid %d", sig == SIGSTOP ? "SIGSTOP" : "SIGCONT", (int)pid);
        status = 200;
    }
    *answer = cJSON_CreateString(text);
    return status;
}

/* stop: SIGSTOP to the process listening on the service's port. */
static long act_stop(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    return signal_listener(r, s, SIGSTOP, answer);
}

/* resume: SIGCONT to it. */
static long act_resume(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    return signal_listener(r, s, SIGCONT, answer);
}

/* kill: SIGKILL to one of make run's processes; its supervisor restarts it. */
static long act_kill(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    char text[RUN_KEEP + 200];
    long status = process_signal(r, s, false, text, sizeof text);
    *answer = cJSON_CreateString(text);
    return status;
}

/* restart: SIGTERM to it, then wait until the supervisor's new process answers. */
static long act_restart(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    char text[RUN_KEEP + 200];
    long status = process_signal(r, s, true, text, sizeof text);
    *answer = cJSON_CreateString(text);
    return status;
}

/* run: a shell command (RUN_LIMIT_S at most); 200 when it exits 0, else 500. */
static long act_run(chaos_run *r, const chaos_step *s, cJSON **answer)
{
    (void)r;
    char text[RUN_KEEP + 200];
    int rc = run_shell(s->command, text, sizeof text);
    *answer = cJSON_CreateString(text);
    return rc == 0 ? 200 : 500;
}

const chaos_action chaos_actions[] = {
    { "fault", { CHAOS_FIELD_SERVICE, CHAOS_FIELD_FAULTS }, act_fault },
    { "clear", { CHAOS_FIELD_SERVICE }, act_clear },
    { "open", { CHAOS_FIELD_BREAKER }, act_force },
    { "close", { CHAOS_FIELD_BREAKER }, act_force },
    { "stop", { CHAOS_FIELD_SERVICE }, act_stop },
    { "resume", { CHAOS_FIELD_SERVICE }, act_resume },
    { "kill", { CHAOS_FIELD_PROCESS }, act_kill },
    { "restart", { CHAOS_FIELD_PROCESS }, act_restart },
    { "run", { CHAOS_FIELD_COMMAND }, act_run },
    { "retry", { CHAOS_FIELD_SERVICE, CHAOS_FIELD_SETTINGS }, act_settings },
    { "shed", { CHAOS_FIELD_SERVICE, CHAOS_FIELD_SETTINGS }, act_settings },
    { "hedge", { CHAOS_FIELD_SERVICE, CHAOS_FIELD_SETTINGS }, act_settings },
    { "tune", { CHAOS_FIELD_BREAKER, CHAOS_FIELD_OPTIONS }, act_tune },
};
const size_t chaos_nactions = sizeof chaos_actions / sizeof chaos_actions[0];

/* ---- an action in words (act_describe) -------------------------------------------- */

/* Appends printf-style words to buf (len bytes, kept NUL-terminated). */
static void add(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t len, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

/* A number as words: 60, 0.5, 2000; true and false as on and off. */
static void number_words(const cJSON *v, char *buf, size_t len)
{
    if (cJSON_IsNumber(v))
        snprintf(buf, len, "%g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "on" : "off");
    else {
        char *flat = cJSON_PrintUnformatted(v);
        snprintf(buf, len, "%s", flat ? flat : "?");
        free(flat);
    }
}

/* A field of a fault said in words, when present: its key and the words
 * with %s for its value (" (at most %s ms)"). */
typedef struct field_words {
    const char *name;
    const char *words;
} field_words;

/* One kind of fault of PUT /chaos (the services' chaos_faults[] in
 * common/svc/lab/chaos.c) in words: when it meets every request, when it
 * meets a share ({pct} is that share, "30%"), and its own fields. The
 * fields every fault takes (fraction, expires_s) are said by
 * fault_words(); a kind or field missing here is said generically. */
typedef struct fault_row {
    const char *kind;
    const char *all;
    const char *some;
    field_words fields[3];
} fault_row;

static const fault_row fault_rows[] = {
    { "error", "errors (502) on 100% of requests", "errors (502) on {pct} of requests", { { NULL, NULL } } },
    { "latency", "every request waits {ms} ms", "{pct} of requests wait {ms} ms",
      { { "ms", NULL }, { "jitter_ms", " (± %s ms)" }, { NULL, NULL } } },
    { "hang", "every request hangs, answering nothing, until the caller gives up",
      "{pct} of requests hang, answering nothing, until the caller gives up",
      { { "max_ms", " (at most %s ms)" }, { NULL, NULL } } },
    { "reset", "every connection is reset (100%)", "{pct} of connections are reset", { { NULL, NULL } } },
    { "database", "every database write fails (100%)", "{pct} of database writes fail", { { NULL, NULL } } },
    { "no_deadlines", "callers' deadlines are ignored on every request, none passed on",
      "callers' deadlines are ignored on {pct} of requests", { { NULL, NULL } } },
    { "lose_answer", "every answer is lost after the work is stored",
      "{pct} of answers are lost after the work is stored",
      { { "times", " (the next %s requests only)" }, { NULL, NULL } } },
    { "no_idempotency", "idempotency keys are ignored on every request (a retry stores again)",
      "idempotency keys are ignored on {pct} of requests", { { NULL, NULL } } },
};

/* The row of fault kind, or NULL. */
static const fault_row *fault_row_of(const char *kind)
{
    for (size_t i = 0; i < sizeof fault_rows / sizeof fault_rows[0]; i++)
        if (strcmp(fault_rows[i].kind, kind) == 0)
            return &fault_rows[i];
    return NULL;
}

/* Whether key is one of the row's fields (or a field every fault takes). */
static bool fault_field_known(const fault_row *row, const char *key)
{
    if (strcmp(key, "fraction") == 0 || strcmp(key, "expires_s") == 0)
        return true;
    for (int i = 0; row && row->fields[i].name; i++)
        if (strcmp(row->fields[i].name, key) == 0)
            return true;
    return false;
}

/* Copies template into buf with {pct} and {<field>} replaced by their values. */
static void fill_template(const char *template, const cJSON *body, const char *pct, char *buf, size_t len)
{
    buf[0] = '\0';
    for (const char *p = template; *p;) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (!close) {
            add(buf, len, "%c", *p++);
            continue;
        }
        char key[32], value[48];
        snprintf(key, sizeof key, "%.*s", (int)(close - p - 1), p + 1);
        if (strcmp(key, "pct") == 0)
            snprintf(value, sizeof value, "%s", pct);
        else if (cJSON_GetObjectItemCaseSensitive(body, key))
            number_words(cJSON_GetObjectItemCaseSensitive(body, key), value, sizeof value);
        else
            snprintf(value, sizeof value, "?");
        add(buf, len, "%s", value);
        p = close + 1;
    }
}

/* One fault of a PUT /chaos body in words: "errors on 30% of requests (502) for 60 s". */
static void fault_words(const char *kind, const cJSON *body, char *buf, size_t len)
{
    const fault_row *row = fault_row_of(kind);
    const cJSON *fraction = cJSON_GetObjectItemCaseSensitive(body, "fraction");
    double share = cJSON_IsNumber(fraction) ? fraction->valuedouble : 1.0;
    char pct[32];
    snprintf(pct, sizeof pct, "%g%%", share * 100);
    buf[0] = '\0';
    if (row)
        fill_template(share >= 1.0 ? row->all : row->some, body, pct, buf, len);
    else
        add(buf, len, "fault \"%s\" on %s of requests", kind, pct);
    for (int i = 0; row && row->fields[i].name; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, row->fields[i].name);
        if (v && row->fields[i].words) {
            char value[48];
            number_words(v, value, sizeof value);
            add(buf, len, row->fields[i].words, value);
        }
    }
    const cJSON *expires = cJSON_GetObjectItemCaseSensitive(body, "expires_s");
    if (cJSON_IsNumber(expires) && expires->valuedouble > 0)
        add(buf, len, " for %g s", expires->valuedouble);
    else
        add(buf, len, " until cleared");
    const cJSON *f;
    cJSON_ArrayForEach(f, body)     /* fields this table does not know, as they are */
        if (!fault_field_known(row, f->string)) {
            char value[48];
            number_words(f, value, sizeof value);
            add(buf, len, " (%s %s)", f->string, value);
        }
}

/* A body's field in words: its key, its words with %s for its value and,
 * when the value 1 needs other words ("1 attempt"), those. */
typedef struct body_field {
    const char *name;
    const char *words;
    const char *one;
} body_field;

/* The retry settings of POST /retry: "3 attempts, back-off from 20 ms, up to 100 ms". */
static const body_field retry_fields[] = {
    { "attempts", "%s attempts", "1 attempt (no retries)" },
    { "base_ms", "back-off from %s ms", NULL },
    { "cap_ms", "up to %s ms", NULL },
    { "budget_tokens", "a budget of %s tokens", NULL },
    { "budget_ratio", "budget ratio %s", NULL },
    { NULL, NULL, NULL },
};

/* A tune's options (POST /breaker/options): "open period doubles (x2), up to 60000 ms". */
static const body_field tune_fields[] = {
    { "reset_timeout_ms", "open period %s ms", NULL },
    { "backoff", "open period grows x%s after each failed trial", "no back-off (x1)" },
    { "backoff_max_ms", "up to %s ms", NULL },
    { "volume_threshold", "needs %s calls in the window", NULL },
    { "error_threshold", "opens at %s%% errors", NULL },
    { NULL, NULL, NULL },
};

/* The load shedding of POST /shed: "on, limit from 8 (between 1 and 8)". */
static const body_field shed_fields[] = {
    { "enabled", "%s", NULL },
    { "initial_limit", "limit from %s", NULL },
    { "min_limit", "at least %s", NULL },
    { "max_limit", "at most %s", NULL },
    { NULL, NULL, NULL },
};

/* The hedging of POST /hedge: "up to 3 copies, the next after 50 ms". */
static const body_field hedge_fields[] = {
    { "max_copies", "up to %s copies", "1 copy (no hedging)" },
    { "delay_ms", "the next after %s ms", NULL },
    { "percentile", "or the p%s of recent calls", NULL },
    { "budget_ratio", "hedges at most %s of calls", NULL },
    { NULL, NULL, NULL },
};

/* Whether key is one of the table's fields. */
static bool body_field_known(const body_field *table, const char *key)
{
    for (const body_field *f = table; f->name; f++)
        if (strcmp(f->name, key) == 0)
            return true;
    return false;
}

/* Adds the body in words, known fields in the table's order, then the others. */
static void body_words(const body_field *table, const cJSON *body, char *buf, size_t len)
{
    const char *sep = "";
    for (const body_field *t = table; t->name; t++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, t->name);
        if (!v)
            continue;
        char value[48];
        number_words(v, value, sizeof value);
        add(buf, len, "%s", sep);
        if (t->one && cJSON_IsNumber(v) && v->valuedouble == 1)
            add(buf, len, "%s", t->one);
        else
            add(buf, len, t->words, value);
        sep = ", ";
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, body)
        if (!body_field_known(table, f->string)) {
            char value[48];
            number_words(f, value, sizeof value);
            add(buf, len, "%s%s %s", sep, f->string, value);
            sep = ", ";
        }
}

/* The actions with a settings body (POST /<action>) in words: %s for the
 * step's service, then %s for its next hop, then the body's fields. */
typedef struct settings_row {
    const char *action;
    const char *words;
    const body_field *fields;
} settings_row;

static const settings_row settings_rows[] = {
    { "retry", "%s: its calls to %s retried with ", retry_fields },
    { "shed", "%s: load shedding of its POST /create: ", shed_fields },
    { "hedge", "%s: its calls to %s hedged: ", hedge_fields },
};

/* The row of a settings action; the first (retry) for one it does not know. */
static const settings_row *settings_row_of(const char *action)
{
    for (size_t i = 0; i < sizeof settings_rows / sizeof settings_rows[0]; i++)
        if (strcmp(settings_rows[i].action, action) == 0)
            return &settings_rows[i];
    return &settings_rows[0];
}

/* The words of the actions without a body, with %s for the step's service
 * or breaker label (act_describe fills in fault and retry). */
static const struct { const char *action; const char *words; } action_words[] = {
    { "clear", "cleared every fault on %s" },
    { "open", "%s: forced open" },
    { "close", "%s: closed by hand (no longer forced, its window emptied)" },
    { "stop", "%s: process stopped (SIGSTOP): it holds every connection, answering nothing" },
    { "resume", "%s: process resumed (SIGCONT)" },
    { "kill", "%s: killed (SIGKILL); make run's supervisor starts it again" },
    { "restart", "%s: restarted (SIGTERM, then waiting until it answers again)" },
};

void act_describe(const chaos_step *s, char *buf, size_t len)
{
    buf[0] = '\0';
    char who[64];
    if (s->breaker)
        chaos_ref_label(s->breaker, who, sizeof who);
    else
        snprintf(who, sizeof who, "%s", s->service ? s->service : "");
    if (s->faults) {
        add(buf, len, "%s: ", who);
        const cJSON *f;
        const char *sep = "";
        cJSON_ArrayForEach(f, s->faults) {
            char one[300];
            fault_words(f->string, f, one, sizeof one);
            add(buf, len, "%s%s", sep, one);
            sep = "; ";
        }
        return;
    }
    if (s->settings) {
        const settings_row *row = settings_row_of(s->action);
        int i = chaos_service_index(s->service);
        add(buf, len, row->words, who,
            i >= 0 && chaos_services[i].next[0] ? chaos_services[i].next : "the next hop");
        body_words(row->fields, s->settings, buf, len);
        return;
    }
    if (s->options) {
        add(buf, len, "%s: options set: ", who);
        body_words(tune_fields, s->options, buf, len);
        return;
    }
    if (s->command) {
        add(buf, len, "runs the command: %s", s->command);
        return;
    }
    for (size_t i = 0; i < sizeof action_words / sizeof action_words[0]; i++)
        if (strcmp(action_words[i].action, s->action) == 0) {
            add(buf, len, action_words[i].words, who);
            return;
        }
    add(buf, len, "%s %s", s->action, who);
}

/* ---- carrying out a step ------------------------------------------------------------ */

/* Records the step's outcome in r->actions (taking answer) and prints its
 * line: what it did in words, and its why. */
static void record(chaos_run *r, const chaos_step *s, const char *phase, long status, cJSON *answer)
{
    bool ok = status >= 200 && status < 300;
    char what[600];
    act_describe(s, what, sizeof what);
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddNumberToObject(rec, "t", r->t0 > 0 ? (double)(long long)(chaos_now(r) * 1000 + 0.5) / 1000 : 0.0);
    cJSON_AddStringToObject(rec, "phase", phase);
    cJSON_AddStringToObject(rec, "action", s->action);
    cJSON_AddStringToObject(rec, "what", what);
    cJSON_AddItemToObject(rec, "service", s->service ? cJSON_CreateString(s->service) : cJSON_CreateNull());
    cJSON_AddItemToObject(rec, "breaker", s->breaker ? cJSON_CreateString(s->breaker) : cJSON_CreateNull());
    cJSON_AddItemToObject(rec, "why", s->why ? cJSON_CreateString(s->why) : cJSON_CreateNull());
    cJSON_AddBoolToObject(rec, "ok", ok);
    cJSON_AddNumberToObject(rec, "status", (double)status);
    if (s->command)
        cJSON_AddStringToObject(rec, "command", s->command);
    char shown[220] = "";
    if (!ok) {
        char *flat = cJSON_IsString(answer) ? NULL : cJSON_PrintUnformatted(answer);
        snprintf(shown, sizeof shown, "%s", flat ? flat : cJSON_IsString(answer) ? answer->valuestring : "");
        free(flat);
    }
    cJSON_AddItemToObject(rec, "answer", answer ? answer : cJSON_CreateNull());
    cJSON_AddItemToArray(r->actions, rec);
    const char *prefix = strcmp(phase, "method") == 0 ? "" : "rollback: ";
    if (ok)
        chaos_say(r, "%s%s", prefix, what);
    else
        chaos_say(r, "%sFAILED (answer %ld): %s: %s", prefix, status, what, shown);
    if (s->why)
        chaos_say(r, "    why: %s", s->why);
}

bool chaos_act(chaos_run *r, const chaos_step *s, const char *phase)
{
    cJSON *answer = NULL;
    long status = s->kind->act(r, s, &answer);
    record(r, s, phase, status, answer);
    return status >= 200 && status < 300;
}
