/* observe_assets.c -- GET /dashboard: the live dashboard's files, embedded in the binary.
 *
 * The files under common/svc/observe/dashboard/ are pulled into .rodata by the
 * assembler's .incbin at build time (paths relative to the project root,
 * where make runs), so the service needs no file system and no generated
 * sources. Each blob gets a terminating NUL that is not part of its length.
 */
#include "observe.h"
#include "observe_priv.h"

#include <string.h>

#define OBS_EMBED(sym, file)                                   \
    __asm__(".pushsection .rodata\n"                           \
            ".balign 16\n"                                     \
            ".type " #sym ", @object\n"                        \
            #sym ":\n"                                         \
            ".incbin \"" file "\"\n"                           \
            #sym "_end:\n"                                     \
            ".byte 0\n"                                        \
            ".popsection\n");                                  \
    extern const char sym[], sym##_end[]

OBS_EMBED(obs_asset_html, "common/svc/observe/dashboard/index.html");
OBS_EMBED(obs_asset_css, "common/svc/observe/dashboard/dashboard.css");
OBS_EMBED(obs_asset_js, "common/svc/observe/dashboard/dashboard.js");

typedef struct asset {
    const char *path;
    const char *content_type;
    const char *start;
    const char *end;
} asset;

static const asset assets[] = {
    { "/dashboard", "text/html; charset=utf-8", obs_asset_html, obs_asset_html_end },
    { "/dashboard/", "text/html; charset=utf-8", obs_asset_html, obs_asset_html_end },
    { "/dashboard/index.html", "text/html; charset=utf-8", obs_asset_html, obs_asset_html_end },
    { "/dashboard/dashboard.css", "text/css; charset=utf-8", obs_asset_css, obs_asset_css_end },
    { "/dashboard/dashboard.js", "text/javascript; charset=utf-8", obs_asset_js, obs_asset_js_end },
};

int obs_handle_dashboard(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0) {
        static const char msg[] = "{\"error\":\"use GET\"}";
        return obs_send(conn, 405, "application/json", msg, sizeof msg - 1);
    }
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp(uri, assets[i].path) == 0)
            return obs_send(conn, 200, assets[i].content_type, assets[i].start,
                            (size_t)(assets[i].end - assets[i].start));
    static const char msg[] = "{\"error\":\"no such dashboard file\"}";
    return obs_send(conn, 404, "application/json", msg, sizeof msg - 1);
}
