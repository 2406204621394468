/* task.c: the scheduler. Owns the ty_task structs, a pool of reusable
 * coroutines, the ready queue (tasks to start or resume on the next loop
 * turn), and the Lua API over them: tycho.spawn, task handles (join, cancel)
 * and the token/park/wake triple that the Lua wrappers over luv use.
 *
 * Safety rule: a wake names the task *and* the token of the park it answers.
 * Tokens come from one 64-bit counter and are never reused, so a late libuv
 * callback for a cancelled, finished or recycled task finds a mismatch and
 * is dropped. Task structs are recycled through a free list and only freed
 * at shutdown, so a stale ty_task pointer is always safe to compare.
 */
#include "task.h"
#include "host.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDLE_MT "tycho.task"
#define POOL_MAX 256     /* idle coroutines kept for reuse */
#define QUEUE_BATCH 1024 /* tasks run per loop turn, for fairness with I/O */

typedef enum { ST_READY, ST_RUNNING, ST_PARKED, ST_DONE } task_state;

typedef struct joiner {
  ty_task *t;
  uint64_t tok;
  struct joiner *next;
} joiner;

struct ty_task {
  lua_State *co;
  int co_ref;
  task_state state;
  int how;       /* TY_TASK_* once done */
  int nargs;     /* arguments on co for the first resume */
  uint64_t tok;  /* the park it waits on, 0 for none */
  uint64_t qtok; /* the park a queued wake answers (0: start) */
  unsigned cancelled : 1, queued : 1, early : 1;
  unsigned yielded : 1; /* parked by a bare coroutine.yield() */
  int early_ref;        /* values of a wake that came before the park */
  int cancel_ref;       /* Lua function run on cancel of a Lua-level park */
  ty_task_cancel_fn on_cancel;
  void *cancel_ud;
  ty_task_done_fn on_done;
  void *done_ud;
  lua_KFunction uk; /* the continuation of a ty_task_park_k */
  lua_KContext uctx;
  int result_ref; /* results table for join, or LUA_NOREF */
  int handles;    /* Lua handle boxes that point here */
  joiner *joiners;
  ty_task *qnext;     /* ready queue */
  ty_task *free_next; /* free list */
  ty_task *all_next;  /* every struct ever made, for shutdown */
  char name[64];
};

typedef struct {
  lua_State *co;
  int ref;
} pooled;

static uint64_t last_token;
static ty_task *running; /* the task being resumed right now */
/* Its coroutine, for the loop watchdog's thread (src/thread/watchdog.c). */
static _Atomic(lua_State *) running_co;
static ty_task *qhead, *qtail;
static ty_task *free_tasks, *all_tasks;
static pooled pool[POOL_MAX];
static int npool;
static uv_idle_t idle;
static ty_closer idle_closer;
static int idle_ready;

static void step(ty_task *t, int nargs);

/* ---------------------------------------------------------------------- */
/* Allocation: structs and coroutines                                     */

static ty_task *task_alloc(void) {
  ty_task *t = free_tasks;
  if (t) {
    free_tasks = t->free_next;
  } else {
    t = malloc(sizeof *t);
    if (!t)
      return NULL;
    t->all_next = all_tasks;
    all_tasks = t;
  }
  ty_task *keep = t->all_next;
  memset(t, 0, sizeof *t);
  t->all_next = keep;
  t->co_ref = t->early_ref = t->cancel_ref = t->result_ref = LUA_NOREF;
  return t;
}

/* Back to the free list once nothing can reach the task any more. */
static void task_release(ty_task *t) {
  if (t->state != ST_DONE || t->handles > 0 || t->queued)
    return;
  lua_State *L = ty_host_get()->L;
  luaL_unref(L, LUA_REGISTRYINDEX, t->result_ref);
  t->result_ref = LUA_NOREF;
  while (t->joiners) {
    joiner *j = t->joiners;
    t->joiners = j->next;
    free(j);
  }
  t->free_next = free_tasks;
  free_tasks = t;
}

static void thread_get(lua_State *L, ty_task *t) {
  if (npool > 0) {
    npool--;
    t->co = pool[npool].co;
    t->co_ref = pool[npool].ref;
  } else {
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  *(ty_task **)lua_getextraspace(t->co) = t;
}

static void thread_put(ty_task *t, int ok) {
  lua_State *L = ty_host_get()->L;
  lua_State *co = t->co;
  *(ty_task **)lua_getextraspace(co) = NULL;
  if (ok)
    lua_settop(co, 0);
  else if (lua_resetthread(co) != LUA_OK)
    lua_settop(co, 0); /* a failing __close: its error is already moot */
  /* Only threads that ended well are reused: one killed by an error from
   * a hook (the HTTP cpu limit's) keeps hooks off for good, since Lua
   * re-enables them only when a hook returns. */
  if (ok && npool < POOL_MAX) {
    pool[npool].co = co;
    pool[npool].ref = t->co_ref;
    npool++;
  } else {
    luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
  }
  t->co = NULL;
  t->co_ref = LUA_NOREF;
}

/* ---------------------------------------------------------------------- */
/* The ready queue, drained from an idle handle                           */

static void on_idle(uv_idle_t *h);

static void enqueue(ty_task *t, uint64_t qtok) {
  if (t->queued)
    return;
  t->queued = 1;
  t->qtok = qtok;
  t->qnext = NULL;
  if (qtail)
    qtail->qnext = t;
  else
    qhead = t;
  qtail = t;
  if (idle_ready && !uv_is_active((uv_handle_t *)&idle))
    uv_idle_start(&idle, on_idle);
}

static void run_queued(ty_task *t) {
  t->queued = 0;
  if (t->state == ST_READY)
    step(t, t->nargs);
  else if (t->state == ST_PARKED && t->qtok != 0 && t->tok == t->qtok)
    ty_task_resume(t, 0);
  else
    task_release(t);
}

/* Runs what was queued before this turn; what those tasks queue runs on
 * the next turn, so a task that yields in a loop cannot starve I/O. */
static void on_idle(uv_idle_t *h) {
  ty_task *stop = qtail;
  int n = 0;
  while (qhead && n++ < QUEUE_BATCH) {
    ty_task *t = qhead;
    qhead = t->qnext;
    if (!qhead)
      qtail = NULL;
    run_queued(t);
    if (t == stop)
      break;
  }
  if (!qhead)
    uv_idle_stop(h);
}

static void idle_close(ty_closer *c) {
  (void)c;
  idle_ready = 0;
  uv_close((uv_handle_t *)&idle, NULL);
}

/* ---------------------------------------------------------------------- */
/* Running, finishing                                                     */

/* Keeps what a joiner will want: {n=, ...} or {err=} */
static void keep_results(lua_State *L, ty_task *t, int nres) {
  lua_State *co = t->co;
  luaL_checkstack(L, nres + 2, "too many results");
  lua_createtable(L, nres, 2);
  int tbl = lua_gettop(L);
  if (t->how == TY_TASK_OK) {
    lua_xmove(co, L, nres);
    for (int i = nres; i >= 1; i--)
      lua_rawseti(L, tbl, i);
  } else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    lua_setfield(L, -2, "err");
  }
  lua_pushinteger(L, nres);
  lua_setfield(L, -2, "n");
  t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Replaces the error on top of co with "message\ntraceback". */
static void add_traceback(lua_State *L, lua_State *co) {
  const char *msg = lua_tostring(co, -1);
  if (msg == NULL)
    return; /* keep non-string error objects as they are */
  luaL_traceback(L, co, msg, 0);
  lua_pop(co, 1);
  lua_xmove(L, co, 1);
}

static void wake_joiners(ty_task *t) {
  for (joiner *j = t->joiners; j; j = j->next)
    if (j->t->state == ST_PARKED && j->t->tok == j->tok)
      enqueue(j->t, j->tok);
}

static void finish(ty_task *t, int how, int nres) {
  ty_host *h = ty_host_get();
  lua_State *L = h->L;
  t->state = ST_DONE;
  t->how = how;
  t->tok = 0;
  if (how == TY_TASK_ERROR)
    add_traceback(L, t->co);
  if (t->on_done) {
    t->on_done(t, how, t->done_ud);
  } else {
    if (t->handles > 0 || t->joiners)
      keep_results(L, t, nres);
    if (how == TY_TASK_ERROR && !t->joiners && !h->exit_requested) {
      lua_pushvalue(t->co, -1);
      lua_xmove(t->co, L, 1);
      char what[80];
      snprintf(what, sizeof what, "task '%s' failed", t->name);
      ty_report(L, what);
    }
    wake_joiners(t);
  }
  thread_put(t, how == TY_TASK_OK);
  task_release(t);
}

static void step(ty_task *t, int nargs) {
  ty_host *h = ty_host_get();
  ty_task *prev = running;
  int nres = 0;
  t->state = ST_RUNNING;
  t->yielded = 0;
  running = t;
  atomic_store_explicit(&running_co, t->co, memory_order_relaxed);
  int st = lua_resume(t->co, prev ? prev->co : h->L, nargs, &nres);
  running = prev;
  atomic_store_explicit(&running_co, prev ? prev->co : NULL,
                        memory_order_relaxed);
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    if (t->state == ST_PARKED)
      return;
    /* A bare coroutine.yield() at task level: give the loop a turn. */
    t->state = ST_PARKED;
    t->yielded = 1;
    t->tok = ++last_token;
    enqueue(t, t->tok);
    return;
  }
  int how = TY_TASK_OK;
  if (st != LUA_OK)
    how = t->cancelled ? TY_TASK_CANCELLED : TY_TASK_ERROR;
  finish(t, how, nres);
}

/* ---------------------------------------------------------------------- */
/* C API                                                                  */

ty_task *ty_task_new(lua_State *L, int nargs, const char *name) {
  ty_task *t = task_alloc();
  if (!t)
    luaL_error(L, "out of memory creating a task");
  thread_get(L, t);
  lua_xmove(L, t->co, nargs + 1);
  t->nargs = nargs;
  t->state = ST_READY;
  /* no printf here: HTTP requests make a task each */
  size_t n = strlen(name ? name : "task");
  if (n >= sizeof t->name)
    n = sizeof t->name - 1;
  memcpy(t->name, name ? name : "task", n);
  t->name[n] = '\0';
  return t;
}

void ty_task_run(ty_task *t) {
  if (t->state == ST_READY)
    step(t, t->nargs);
}

void ty_task_schedule(ty_task *t) { enqueue(t, 0); }

void ty_task_on_done(ty_task *t, ty_task_done_fn fn, void *ud) {
  t->on_done = fn;
  t->done_ud = ud;
}

lua_State *ty_task_thread(ty_task *t) { return t->co; }
const char *ty_task_name(ty_task *t) { return t->name; }

lua_State *ty_task_running_thread(void) {
  return atomic_load_explicit(&running_co, memory_order_relaxed);
}

ty_task *ty_task_current(lua_State *L) {
  ty_task *t = *(ty_task **)lua_getextraspace(L);
  if (t && t->co == L && t->state == ST_RUNNING)
    return t;
  return NULL;
}

/* The name the user's code called a waiting function by: walking up from
 * the running C function through tycho's own Lua frames (lua/tycho/...),
 * the last named one before the first frame of other code. NULL when the
 * name is unknown (called through pcall, say). */
static const char *called_name(lua_State *L) {
  lua_Debug ar;
  const char *name = NULL;
  for (int level = 0; level < 8 && lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sn", &ar))
      break;
    if (level > 0 && (ar.what[0] == 'C' || !strstr(ar.source, "lua/tycho/")))
      break;
    name = ar.name;
  }
  return name && strcmp(name, "token") != 0 ? name : NULL;
}

static ty_task *need_task(lua_State *L, const char *fname) {
  ty_task *t = ty_task_current(L);
  if (t)
    return t;
  const char *called =
      strcmp(fname, "an async function") == 0 ? called_name(L) : NULL;
  luaL_error(L,
             "%s%s%s must be called inside a task (use tycho.spawn): it waits, "
             "and luv "
             "callbacks and plain coroutines cannot",
             called ? "'" : "", called ? called : fname, called ? "'" : "");
  return NULL;
}

uint64_t ty_task_prepare(lua_State *L) {
  ty_task *t = need_task(L, "an async function");
  t->tok = ++last_token;
  t->early = 0;
  return t->tok;
}

static int raise_cancelled(lua_State *L) {
  lua_pushliteral(L, "cancelled");
  return lua_error(L);
}

static int park_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  ty_task *t = ty_task_current(L);
  if (t && t->cancelled)
    return raise_cancelled(L);
  return lua_gettop(L) - (int)ctx;
}

static int park(lua_State *L, ty_task_cancel_fn fn, void *ud, lua_KFunction k,
                lua_KContext ctx) {
  ty_task *t = need_task(L, "an async function");
  if (t->cancelled || !lua_isyieldable(L)) {
    if (fn)
      fn(ud);
    t->tok = 0;
    if (t->cancelled)
      return raise_cancelled(L);
    return luaL_error(L, "cannot wait here: inside a metamethod, iterator "
                         "or C function that does not allow yields");
  }
  t->state = ST_PARKED;
  t->on_cancel = fn;
  t->cancel_ud = ud;
  return lua_yieldk(L, 0, ctx, k);
}

int ty_task_park(lua_State *L, ty_task_cancel_fn on_cancel, void *ud) {
  return park(L, on_cancel, ud, park_k, lua_gettop(L));
}

/* Checks cancellation, then hands over to the caller's continuation. The
 * (k, ctx) pair waits in the task while it is parked. */
static int user_park_k(lua_State *L, int status, lua_KContext ctx) {
  ty_task *t = ty_task_current(L);
  (void)ctx;
  if (t && t->cancelled)
    return raise_cancelled(L);
  return t->uk(L, status, t->uctx);
}

int ty_task_park_k(lua_State *L, ty_task_cancel_fn on_cancel, void *ud,
                   lua_KFunction k, lua_KContext ctx) {
  ty_task *t = need_task(L, "an async function");
  t->uk = k;
  t->uctx = ctx;
  return park(L, on_cancel, ud, user_park_k, 0);
}

lua_State *ty_task_wakeable(ty_task *t, uint64_t tok) {
  if (ty_host_get()->stopping)
    return NULL;
  if (t->state != ST_PARKED || t->tok != tok || tok == 0)
    return NULL;
  return t->co;
}

static void drop_cancel_ref(ty_task *t) {
  if (t->cancel_ref != LUA_NOREF) {
    luaL_unref(ty_host_get()->L, LUA_REGISTRYINDEX, t->cancel_ref);
    t->cancel_ref = LUA_NOREF;
  }
}

void ty_task_resume(ty_task *t, int n) {
  t->tok = 0;
  t->on_cancel = NULL;
  drop_cancel_ref(t);
  step(t, n);
}

static void run_cancel_hooks(ty_task *t) {
  lua_State *L = ty_host_get()->L;
  if (t->on_cancel)
    t->on_cancel(t->cancel_ud);
  t->on_cancel = NULL;
  if (t->cancel_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->cancel_ref);
    drop_cancel_ref(t);
    if (ty_pcall(L, 0, 0) != LUA_OK)
      ty_report(L, "cancel hook");
  }
}

void ty_task_cancel(ty_task *t) {
  switch (t->state) {
  case ST_DONE:
    return;
  case ST_RUNNING:
    t->cancelled = 1;
    return;
  case ST_READY:
    t->cancelled = 1;
    lua_settop(t->co, 0);
    lua_pushliteral(t->co, "cancelled");
    finish(t, TY_TASK_CANCELLED, 0);
    return;
  case ST_PARKED:
    t->cancelled = 1;
    t->tok = 0;
    if (t->yielded) {
      /* coroutine.yield() returns normally when resumed, so it cannot
       * raise "cancelled": end the task where it stands instead. */
      lua_pushliteral(t->co, "cancelled");
      finish(t, TY_TASK_CANCELLED, 0);
      return;
    }
    run_cancel_hooks(t);
    if (t->state == ST_PARKED)
      step(t, 0); /* park_k raises "cancelled" */
    return;
  }
}

/* ---------------------------------------------------------------------- */
/* Lua API: token/park/wake for wrappers written in Lua                   */

/* token() -> co, tok: the current task and a fresh park token. */
static int l_token(lua_State *L) {
  uint64_t tok = ty_task_prepare(L);
  lua_pushthread(L);
  lua_pushinteger(L, (lua_Integer)tok);
  return 2;
}

/* park([on_cancel]) -> values given to wake */
static int l_park(lua_State *L) {
  ty_task *t = need_task(L, "park");
  if (t->early) {
    t->early = 0;
    t->tok = 0;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->early_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->early_ref);
    t->early_ref = LUA_NOREF;
    lua_Integer n = (lua_getfield(L, 1, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, (int)n, "too many values");
    for (lua_Integer i = 1; i <= n; i++)
      lua_rawgeti(L, 1, i);
    return (int)n;
  }
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    drop_cancel_ref(t);
    t->cancel_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_settop(L, 0);
  return ty_task_park(L, NULL, NULL);
}

/* Stores the values of a wake that arrived before its park. */
static void keep_early(lua_State *L, ty_task *t, int first, int n) {
  lua_createtable(L, n, 1);
  for (int i = 0; i < n; i++) {
    lua_pushvalue(L, first + i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  t->early_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->early = 1;
}

/* wake(co, tok, ...) -> true if the task was waiting on tok */
static int l_wake(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  lua_Integer tok = luaL_checkinteger(L, 2);
  lua_State *co = lua_tothread(L, 1);
  ty_task *t = *(ty_task **)lua_getextraspace(co);
  int n = lua_gettop(L) - 2;
  if (t && t->co == co && ty_task_wakeable(t, (uint64_t)tok)) {
    luaL_checkstack(co, n, "too many values");
    lua_xmove(L, co, n);
    ty_task_resume(t, n);
    lua_pushboolean(L, 1);
    return 1;
  }
  int early = t && t->co == co && t->state == ST_RUNNING &&
              t->tok == (uint64_t)tok && tok != 0 && !t->early;
  if (early)
    keep_early(L, t, 3, n);
  lua_pushboolean(L, early);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Lua API: spawn and task handles                                        */

typedef struct {
  ty_task *t;
} handle_box;

static void name_from_function(lua_State *L, int idx, char *buf, size_t len) {
  lua_Debug ar;
  lua_pushvalue(L, idx);
  if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
    snprintf(buf, len, "%.40s:%d", ar.short_src, ar.linedefined);
  else
    snprintf(buf, len, "task");
}

/* spawn(fn, ...) -> handle */
static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  char name[64];
  name_from_function(L, 1, name, sizeof name);
  int nargs = lua_gettop(L) - 1;
  handle_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->t = NULL;
  luaL_setmetatable(L, HANDLE_MT);
  lua_insert(L, 1);
  ty_task *t = ty_task_new(L, nargs, name);
  b->t = t;
  t->handles++;
  ty_task_schedule(t);
  return 1;
}

static ty_task *check_handle(lua_State *L) {
  handle_box *b = luaL_checkudata(L, 1, HANDLE_MT);
  return b->t;
}

static int push_results(lua_State *L, ty_task *t) {
  if (t->how == TY_TASK_CANCELLED)
    return luaL_error(L, "task was cancelled");
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref);
  int r = lua_gettop(L);
  if (t->how == TY_TASK_ERROR) {
    lua_getfield(L, r, "err");
    return lua_error(L);
  }
  lua_getfield(L, r, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++)
    lua_rawgeti(L, r, i);
  return n;
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  ty_task *me = ty_task_current(L);
  if (me && me->cancelled)
    return raise_cancelled(L);
  return push_results(L, check_handle(L));
}

/* handle:join() -> the task's results, or raises its error */
static int l_join(lua_State *L) {
  ty_task *t = check_handle(L);
  lua_settop(L, 1);
  if (t->state == ST_DONE)
    return push_results(L, t);
  ty_task *me = need_task(L, "join");
  if (me == t)
    return luaL_error(L, "a task cannot join itself");
  joiner *j = malloc(sizeof *j);
  if (!j)
    return luaL_error(L, "out of memory");
  j->t = me;
  j->tok = ty_task_prepare(L);
  j->next = t->joiners;
  t->joiners = j;
  return park(L, NULL, NULL, join_k, 0);
}

static int l_cancel(lua_State *L) {
  ty_task *t = check_handle(L);
  ty_task_cancel(t);
  return 0;
}

static const char *status_name(ty_task *t) {
  switch (t->state) {
  case ST_READY:
    return "ready";
  case ST_RUNNING:
    return "running";
  case ST_PARKED:
    return "waiting";
  default:
    break;
  }
  return t->how == TY_TASK_OK      ? "done"
         : t->how == TY_TASK_ERROR ? "failed"
                                   : "cancelled";
}

static int l_status(lua_State *L) {
  lua_pushstring(L, status_name(check_handle(L)));
  return 1;
}

static int l_handle_tostring(lua_State *L) {
  ty_task *t = check_handle(L);
  lua_pushfstring(L, "task<%s %s>", t->name, status_name(t));
  return 1;
}

static int l_handle_gc(lua_State *L) {
  handle_box *b = luaL_checkudata(L, 1, HANDLE_MT);
  if (b->t && ty_host_get()->L == L) { /* not while lua_close runs */
    b->t->handles--;
    task_release(b->t);
    b->t = NULL;
  }
  return 0;
}

/* running() -> true when called from inside a task */
static int l_in_task(lua_State *L) {
  lua_pushboolean(L, ty_task_current(L) != NULL);
  return 1;
}

int ty_task_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"join", l_join},
                                     {"cancel", l_cancel},
                                     {"status", l_status},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"spawn", l_spawn},     {"token", l_token},
                                   {"park", l_park},       {"wake", l_wake},
                                   {"in_task", l_in_task}, {NULL, NULL}};
  if (luaL_newmetatable(L, HANDLE_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_handle_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (!idle_ready) {
    uv_idle_init(ty_loop(), &idle);
    idle_closer.close = idle_close;
    ty_host_track(&idle_closer);
    idle_ready = 1;
  }
  luaL_newlib(L, funcs);
  return 1;
}

void ty_task_shutdown(void) {
  while (all_tasks) {
    ty_task *t = all_tasks;
    all_tasks = t->all_next;
    while (t->joiners) {
      joiner *j = t->joiners;
      t->joiners = j->next;
      free(j);
    }
    free(t);
  }
  free_tasks = NULL;
  qhead = qtail = NULL;
  npool = 0;
}
