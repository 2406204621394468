/* host.h: the one Lua state and the one libuv loop of a Tycho process, the
 * error reporter every protected call goes through, and ordered shutdown.
 */
#ifndef TY_HOST_H
#define TY_HOST_H

#include <lua.h>
#include <uv.h>

#define TY_VERSION "0.1.0"

/* A C-owned handle that teardown must close: embed one, link it with
 * ty_host_track, unlink it in the handle's close path. */
typedef struct ty_closer {
  void (*close)(struct ty_closer *c);
  struct ty_closer *prev, *next;
} ty_closer;

typedef struct ty_host {
  uv_loop_t loop;
  lua_State *L;
  int exit_code;
  int exit_requested; /* os.exit or a fatal main-task error */
  int stopping;       /* teardown started: wakes are dropped */
  uv_signal_t sigint, sigterm, sighup;
  ty_closer closers; /* list head */
} ty_host;

ty_host *ty_host_get(void);
uv_loop_t *ty_loop(void);

int ty_host_init(void);
void ty_host_close(void);
int ty_host_run(void);

/* Message handler for lua_pcall: appends a traceback to string errors. */
int ty_traceback(lua_State *L);
/* lua_pcall with ty_traceback; on error the message is left on the stack. */
int ty_pcall(lua_State *L, int nargs, int nresults);
/* Prints "tycho: <what>: <message on top>" to stderr and pops it. */
void ty_report(lua_State *L, const char *what);

/* Stops the loop and makes the process exit with code after teardown. */
void ty_host_exit(int code);

void ty_host_track(ty_closer *c);
void ty_host_untrack(ty_closer *c);

/* The embedded Lua library (embed.c). */
void ty_embed_install(lua_State *L);
void ty_embed_names(lua_State *L); /* [-0, +1, m] array of module names */

#endif
