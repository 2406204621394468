/* watchdog.c: names the Lua code that keeps the event loop from turning.
 *
 * The loop beats: a prepare and a check handle (every iteration) and a
 * timer (so an idle loop still beats) store uv_hrtime() in an atomic. A
 * watchdog thread looks at the beat a few times per threshold; when it is
 * older than the threshold, the loop is stuck inside one callback. The
 * thread cannot read the Lua state, so it sets a count hook with lua_sethook
 * (documented as safe from another thread or a signal) on the coroutine
 * being resumed and on the main state. At its next instruction the stuck
 * code runs the hook, in the loop thread, which logs the task's name (with
 * the request's method and path for an HTTP handler) and a traceback, once
 * per episode; the next beat logs how long the loop was stuck in all.
 *
 * A hook already on a state (debug.sethook, the HTTP cpu limit) is kept
 * aside and put back once ours has run.
 *
 * Limits: a coroutine started with coroutine.resume inside a task is not
 * interrupted; code stuck in C is reported when it returns to Lua, if it
 * still blocks the loop then.
 */
#include "core/host.h"
#include "core/task.h"

#include <lauxlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define REQ_MT "tycho.http.request"
#define REPORT_MAX 4096
#define SAVED_MAX 4

/* A hook that was on a state before ours (debug.sethook, the HTTP cpu
 * limit), put back when ours has run. */
typedef struct {
  lua_State *L;
  lua_Hook hook;
  int mask, count;
} saved_hook;

static struct {
  int ready;   /* handles initialised and tracked */
  int on;      /* the watchdog thread runs */
  uint64_t ms; /* threshold */
  lua_State *L;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;
  int quit;                    /* under mu */
  saved_hook saved[SAVED_MAX]; /* under mu */
  uv_timer_t timer;
  uv_prepare_t prepare;
  uv_check_t check;
  ty_closer closer;
  _Atomic uint64_t beat;    /* last sign of life of the loop */
  _Atomic uint64_t flagged; /* the beat an episode was detected for */
  _Atomic uint64_t threshold_ns;
  uint64_t logged;  /* loop thread: the beat last reported */
  int open_episode; /* loop thread: an end line is due */
  lua_Integer reports;
  char last[REPORT_MAX];
} wd;

/* ---------------------------------------------------------------------- */
/* The loop's side                                                        */

static void beat(void) {
  uint64_t now = uv_hrtime();
  if (wd.open_episode) {
    wd.open_episode = 0;
    fprintf(stderr, "tycho: watchdog: the event loop was blocked for %llu ms\n",
            (unsigned long long)((now - wd.logged) / 1000000));
    fflush(stderr);
  }
  atomic_store(&wd.beat, now);
}

static void on_timer(uv_timer_t *h) { (void)h, beat(); }
static void on_prepare(uv_prepare_t *h) { (void)h, beat(); }
static void on_check(uv_check_t *h) { (void)h, beat(); }

static int is_request(lua_State *L, int idx, int mt) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return 0;
  int same = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return same;
}

/* Pushes " (GET /path)" when a frame of L has an HTTP request among its
 * first locals (a handler's req argument), else "". [-0, +1, e] */
static void push_request(lua_State *L) {
  lua_Debug ar;
  luaL_getmetatable(L, REQ_MT);
  int mt = lua_gettop(L);
  for (int level = 0; level < 200 && lua_getstack(L, level, &ar); level++) {
    for (int i = 1; i <= 3 && lua_getlocal(L, &ar, i); i++) {
      if (is_request(L, -1, mt)) {
        lua_getfield(L, -1, "method");
        lua_getfield(L, -2, "path");
        lua_pushfstring(L, " (%s %s)", lua_tostring(L, -2),
                        lua_tostring(L, -1));
        lua_replace(L, mt);
        lua_settop(L, mt);
        return;
      }
      lua_pop(L, 1);
    }
  }
  lua_pushliteral(L, "");
  lua_replace(L, mt);
}

/* Runs protected inside the hook: builds the report on L. Level 1 is the
 * function the hook interrupted. [-0, +1, e] */
static int build_report(lua_State *L) {
  uint64_t ms = (uv_hrtime() - atomic_load(&wd.flagged)) / 1000000;
  ty_task *t = ty_task_current(L);
  push_request(L);
  const char *req = lua_tostring(L, -1);
  luaL_traceback(L, L, NULL, 1);
  if (t)
    lua_pushfstring(L,
                    "the event loop has been blocked for %d ms by task "
                    "'%s'%s\n%s",
                    (int)ms, ty_task_name(t), req, lua_tostring(L, -1));
  else
    lua_pushfstring(L,
                    "the event loop has been blocked for %d ms by a "
                    "callback%s\n%s",
                    (int)ms, req, lua_tostring(L, -1));
  return 1;
}

/* Takes our hook off L, putting back the one it replaced. */
static void unhook(lua_State *L) {
  saved_hook prev = {0};
  int locked = wd.ready; /* after teardown the watchdog thread is gone */
  if (locked)
    uv_mutex_lock(&wd.mu);
  for (int i = 0; i < SAVED_MAX; i++) {
    if (wd.saved[i].L != L)
      continue;
    prev = wd.saved[i];
    wd.saved[i].L = NULL;
    break;
  }
  if (locked)
    uv_mutex_unlock(&wd.mu);
  lua_sethook(L, prev.hook, prev.mask, prev.count);
}

static void on_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  unhook(L);
  uint64_t flagged = atomic_load(&wd.flagged);
  /* Stale: the loop beat since (it was stuck in C, or elsewhere), or this
   * episode was told already, or the watchdog is off. */
  if (!wd.on || flagged == 0 || atomic_load(&wd.beat) != flagged ||
      wd.logged == flagged)
    return;
  wd.logged = flagged;
  wd.open_episode = 1;
  lua_pushcfunction(L, build_report);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    const char *why = lua_tostring(L, -1);
    lua_pushfstring(L, "the event loop is blocked (no traceback: %s)",
                    why ? why : "error object is not a string");
    lua_remove(L, -2);
  }
  const char *msg = lua_tostring(L, -1);
  wd.reports++;
  snprintf(wd.last, sizeof wd.last, "%s", msg);
  fprintf(stderr, "tycho: watchdog: %s\n", msg);
  fflush(stderr);
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------------- */
/* The watchdog thread                                                    */

/* The slot for L: its own, a free one, or (all taken by states whose
 * owners removed our hook themselves) the oldest. Under wd.mu. */
static saved_hook *slot_for(lua_State *L) {
  static int evict;
  saved_hook *free_slot = NULL;
  for (int i = 0; i < SAVED_MAX; i++) {
    if (wd.saved[i].L == L)
      return &wd.saved[i];
    if (!wd.saved[i].L && !free_slot)
      free_slot = &wd.saved[i];
  }
  if (free_slot)
    return free_slot;
  evict = (evict + 1) % SAVED_MAX;
  return &wd.saved[evict];
}

/* Arms our hook on L, keeping aside a hook already there. Under wd.mu. */
static void hook(lua_State *L) {
  lua_Hook h = lua_gethook(L);
  if (h == on_hook)
    return; /* still armed from an earlier episode */
  if (h != NULL)
    *slot_for(L) = (saved_hook){L, h, lua_gethookmask(L), lua_gethookcount(L)};
  lua_sethook(L, on_hook, LUA_MASKCOUNT, 1);
}

static void watch(void *arg) {
  (void)arg;
  uv_mutex_lock(&wd.mu);
  while (!wd.quit) {
    uint64_t threshold = atomic_load(&wd.threshold_ns);
    uv_cond_timedwait(&wd.cv, &wd.mu, threshold / 4 + 1);
    if (wd.quit)
      break;
    uint64_t b = atomic_load(&wd.beat);
    if (uv_hrtime() - b < threshold || atomic_load(&wd.flagged) == b)
      continue;
    atomic_store(&wd.flagged, b);
    /* The loop is stuck, most likely inside co, which keeps it alive. Were
     * the block to end right now, co would still be pooled by task.c (it
     * is freed only past 256 idle coroutines, after a GC cycle), far
     * longer than the few instructions until lua_sethook below. */
    lua_State *co = ty_task_running_thread();
    if (co)
      hook(co);
    hook(wd.L);
  }
  uv_mutex_unlock(&wd.mu);
}

/* ---------------------------------------------------------------------- */
/* Start, stop                                                            */

static void stop(void) {
  if (!wd.on)
    return;
  uv_mutex_lock(&wd.mu);
  wd.quit = 1;
  uv_cond_signal(&wd.cv);
  uv_mutex_unlock(&wd.mu);
  uv_thread_join(&wd.thread);
  wd.on = 0;
  wd.open_episode = 0;
  uv_timer_stop(&wd.timer);
  uv_prepare_stop(&wd.prepare);
  uv_check_stop(&wd.check);
}

static void wd_close(ty_closer *c) {
  (void)c;
  if (wd.on)
    beat(); /* tells how long a last episode lasted */
  stop();
  uv_close((uv_handle_t *)&wd.timer, NULL);
  uv_close((uv_handle_t *)&wd.prepare, NULL);
  uv_close((uv_handle_t *)&wd.check, NULL);
  uv_mutex_destroy(&wd.mu);
  uv_cond_destroy(&wd.cv);
  wd.ready = 0;
}

static int init_handles(void) {
  if (wd.ready)
    return 0;
  if (uv_mutex_init(&wd.mu) != 0)
    return -1;
  if (uv_cond_init(&wd.cv) != 0) {
    uv_mutex_destroy(&wd.mu);
    return -1;
  }
  uv_loop_t *loop = ty_loop();
  uv_timer_init(loop, &wd.timer);
  uv_prepare_init(loop, &wd.prepare);
  uv_check_init(loop, &wd.check);
  uv_unref((uv_handle_t *)&wd.timer);
  uv_unref((uv_handle_t *)&wd.prepare);
  uv_unref((uv_handle_t *)&wd.check);
  wd.closer.close = wd_close;
  ty_host_track(&wd.closer);
  wd.ready = 1;
  return 0;
}

static int start(lua_State *L, uint64_t ms) {
  if (init_handles() != 0)
    return UV_ENOMEM;
  wd.ms = ms;
  wd.L = ty_host_get()->L;
  wd.quit = 0;
  atomic_store(&wd.threshold_ns, ms * 1000000);
  atomic_store(&wd.flagged, 0);
  beat();
  uint64_t every = ms / 2 > 0 ? ms / 2 : 1;
  uv_timer_start(&wd.timer, on_timer, every, every);
  uv_prepare_start(&wd.prepare, on_prepare);
  uv_check_start(&wd.check, on_check);
  int rc = uv_thread_create(&wd.thread, watch, NULL);
  if (rc != 0) {
    uv_timer_stop(&wd.timer);
    uv_prepare_stop(&wd.prepare);
    uv_check_stop(&wd.check);
    return rc;
  }
  wd.on = 1;
  (void)L;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

/* start(ms) -> true | nil, message, code. ms = 0 stops the watchdog. */
static int l_start(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ms >= 0 && ms <= 86400000, 1, "0 to 86400000 expected");
  if (ty_host_get()->stopping)
    return luaL_error(L, "tycho is shutting down");
  stop();
  wd.ms = 0;
  if (ms == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  int rc = start(L, (uint64_t)ms);
  if (rc != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(rc), uv_strerror(rc));
    lua_pushstring(L, uv_err_name(rc));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* status() -> {ms = threshold or 0, reports = n, last = text or nil} */
static int l_status(lua_State *L) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, wd.on ? (lua_Integer)wd.ms : 0);
  lua_setfield(L, -2, "ms");
  lua_pushinteger(L, wd.reports);
  lua_setfield(L, -2, "reports");
  if (wd.reports > 0) {
    lua_pushstring(L, wd.last);
    lua_setfield(L, -2, "last");
  }
  return 1;
}

int ty_watchdog_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"start", l_start}, {"status", l_status}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
