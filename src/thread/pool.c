/* pool.c: the engine of tycho.thread.run. A job copies a function (or a
 * module name) and its arguments into a byte buffer, runs on libuv's thread
 * pool (uv_queue_work) in a worker Lua state of its own, and copies the
 * results back; the calling task is parked meanwhile and woken from the
 * after-work callback, on the loop thread.
 *
 * Ownership: worker states are taken from and given back to the idle list
 * only on the loop thread; a job's state is touched by exactly one OS thread
 * at a time (the worker between uv_queue_work and its return, the loop
 * thread afterwards). The one exception is shutdown, which may interrupt a
 * running job with lua_sethook, the call Lua documents as safe for that.
 */
#include "core/host.h"
#include "core/task.h"
#include "thread.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

#define JOB_MT "tycho.thread.job"

typedef struct job {
  uv_work_t work;
  lua_State *W;              /* the worker state, or NULL until made */
  _Atomic(lua_State *) live; /* W while Lua runs in it, for shutdown */
  ty_task *task;             /* NULL once nobody waits for the result */
  uint64_t tok;
  int by_name;         /* the first value is a module name */
  unsigned generation; /* of the worker states, when the job started */
  int nargs, nres, failed;
  ty_copybuf in;           /* function or name, then the arguments */
  ty_copybuf out;          /* results, or the error message */
  char *path, *cpath;      /* the host's package.path and cpath */
  struct job *prev, *next; /* jobs in flight */
} job;

typedef struct {
  job *j; /* owned by the box until handed to libuv */
} job_box;

static job inflight = {.prev = &inflight, .next = &inflight};
static lua_State *idle_states[TY_THREAD_STATES_MAX];
static int nidle;
static unsigned generation; /* bumped by reset(): older states are closed */
static int stopping;
static atomic_int interrupting; /* read by worker threads */
static int opened;
static ty_closer closer;

/* ---------------------------------------------------------------------- */
/* Worker states                                                          */

/* Runs once in each new worker state: what a thread may and may not use.
 * tycho's own modules and luv need the loop, so requiring them, touching
 * the `tycho` global or calling os.exit fails with a message saying why. */
static const char worker_setup[] =
    "local name = ...\n"
    "local why = ' is not available inside tycho.thread.run: a thread has "
    "no event loop; pass values in and return results instead'\n"
    "table.insert(package.searchers, 1, function(mod)\n"
    "  if mod == 'tycho' or mod == 'luv' or mod:find('^tycho%.') then\n"
    "    error(\"module '\" .. mod .. \"'\" .. why, 0)\n"
    "  end\n"
    "  return nil\n"
    "end)\n"
    "tycho = setmetatable({}, { __index = function(_, k)\n"
    "  error('tycho.' .. tostring(k) .. why, 2)\n"
    "end })\n"
    "os.exit = function() error('os.exit' .. why, 2) end\n"
    /* The resolver of tycho.thread.run('mod') and ('mod.fn'). */
    "return function(name)\n"
    "  local ok, m = pcall(require, name)\n"
    "  if ok then\n"
    "    if type(m) == 'function' then return m end\n"
    "    error(\"module '\" .. name .. \"' returned a \" .. type(m) .. "
    "\", not a function\", 0)\n"
    "  end\n"
    "  local mod, fn = name:match('^(.+)%.([^.]+)$')\n"
    "  if not mod or not tostring(m):find(\"module '\" .. name .. \"' not "
    "found\", 1, true) then\n"
    "    error(m, 0)\n"
    "  end\n"
    "  local found, t = pcall(require, mod)\n"
    "  if not found then error(t, 0) end\n"
    "  if type(t) ~= 'table' or type(t[fn]) ~= 'function' then\n"
    "    error(\"module '\" .. mod .. \"' has no function '\" .. fn .. "
    "\"'\", 0)\n"
    "  end\n"
    "  return t[fn]\n"
    "end\n";

static char resolver_key;

static int setup_worker(lua_State *W) {
  luaL_openlibs(W);
  luaL_getsubtable(W, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(W, luaopen_cjson);
  lua_setfield(W, -2, "cjson");
  lua_pushcfunction(W, luaopen_cjson_safe);
  lua_setfield(W, -2, "cjson.safe");
  lua_pop(W, 1);
  if (luaL_loadbuffer(W, worker_setup, sizeof worker_setup - 1,
                      "=thread setup") != LUA_OK)
    return lua_error(W);
  lua_call(W, 0, 1);
  lua_rawsetp(W, LUA_REGISTRYINDEX, &resolver_key);
  return 0;
}

static lua_State *new_worker(void) {
  lua_State *W = luaL_newstate();
  if (!W)
    return NULL;
  lua_pushcfunction(W, setup_worker);
  if (lua_pcall(W, 0, 0, 0) != LUA_OK) {
    lua_close(W);
    return NULL;
  }
  return W;
}

/* Given back on the loop thread: kept for the next job, or closed. */
static void worker_put(lua_State *W, unsigned gen) {
  if (!W)
    return;
  lua_settop(W, 0);
  if (!stopping && gen == generation && nidle < TY_THREAD_STATES_MAX)
    idle_states[nidle++] = W;
  else
    lua_close(W);
}

/* ---------------------------------------------------------------------- */
/* In the worker thread                                                   */

static void abort_hook(lua_State *W, lua_Debug *ar) {
  (void)ar;
  luaL_error(W, "interrupted: tycho is shutting down");
}

/* "message\nthread stack traceback: ...", without the [C] frame of the
 * job runner at the bottom, which means nothing to the user. */
static int worker_traceback(lua_State *W) {
  const char *msg = lua_tostring(W, 1);
  if (!msg)
    msg =
        lua_pushfstring(W, "(error object is a %s value)", luaL_typename(W, 1));
  luaL_traceback(W, W, NULL, 1);
  size_t len;
  const char *tb = lua_tolstring(W, -1, &len);
  static const char tail[] = "\n\t[C]: in ?";
  size_t tl = sizeof tail - 1;
  while (len >= tl && memcmp(tb + len - tl, tail, tl) == 0)
    len -= tl;
  lua_pushfstring(W, "%s\nthread ", msg);
  lua_pushlstring(W, tb, len);
  lua_concat(W, 2);
  return 1;
}

static void set_path(lua_State *W, const char *field, const char *value) {
  if (!value)
    return;
  lua_getglobal(W, "package");
  lua_getfield(W, -1, field);
  const char *cur = lua_tostring(W, -1);
  if (!cur || strcmp(cur, value) != 0) {
    lua_pushstring(W, value);
    lua_setfield(W, -3, field);
  }
  lua_pop(W, 2);
}

/* [-0, +0, e] in W: decode, resolve, call, encode the results. */
static int job_main(lua_State *W) {
  job *j = lua_touserdata(W, 1);
  lua_settop(W, 0);
  set_path(W, "path", j->path);
  set_path(W, "cpath", j->cpath);
  size_t pos = 0;
  ty__copy_decode(W, &j->in, &pos, j->nargs + 1);
  if (j->by_name) {
    lua_rawgetp(W, LUA_REGISTRYINDEX, &resolver_key);
    lua_pushvalue(W, 1);
    lua_call(W, 1, 1);
    lua_replace(W, 1);
  }
  lua_call(W, j->nargs, LUA_MULTRET);
  int n = lua_gettop(W);
  char err[256];
  int bad;
  if (ty__copy_encode(W, &j->out, 1, n, err, sizeof err, &bad) != 0)
    return luaL_error(W, "cannot copy result #%d back from the thread: %s",
                      bad + 1, err);
  j->nres = n;
  return 0;
}

static void fail_with(job *j, const char *msg, size_t len) {
  j->failed = 1;
  j->out.len = 0;
  if (ty__copybuf_put(&j->out, msg, len) != 0)
    j->out.len = 0;
}

static void on_work(uv_work_t *w) {
  job *j = (job *)w;
  if (!j->W)
    j->W = new_worker();
  if (!j->W) {
    static const char m[] = "cannot create a Lua state for the thread";
    fail_with(j, m, sizeof m - 1);
    return;
  }
  lua_State *W = j->W;
  atomic_store(&j->live, W);
  /* Either shutdown sees live set, or we see its flag: never neither. */
  if (atomic_load(&interrupting))
    lua_sethook(W, abort_hook, LUA_MASKCOUNT, 1);
  lua_pushcfunction(W, worker_traceback);
  lua_pushcfunction(W, job_main);
  lua_pushlightuserdata(W, j);
  if (lua_pcall(W, 1, 0, 1) != LUA_OK) {
    size_t len;
    const char *msg = lua_tolstring(W, -1, &len);
    if (!msg)
      msg = "error in thread", len = strlen(msg);
    fail_with(j, msg, len);
  }
  atomic_store(&j->live, NULL);
  lua_settop(W, 0);
}

/* ---------------------------------------------------------------------- */
/* Back on the loop thread                                                */

static void job_free(job *j) {
  ty__copybuf_free(&j->in);
  ty__copybuf_free(&j->out);
  free(j->path);
  free(j->cpath);
  free(j);
}

static void unlink_job(job *j) {
  j->prev->next = j->next;
  j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

/* [-0, +(1+nres), e]: true and the results, decoded in the host state. */
static int push_results(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_pushboolean(L, 1);
  size_t pos = 0;
  ty__copy_decode(L, &j->out, &pos, j->nres);
  return lua_gettop(L);
}

/* Leaves on L what the task is woken with: true, results... or false, msg. */
static int collect(lua_State *L, job *j, int status) {
  int top = lua_gettop(L);
  if (status == UV_ECANCELED) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "cancelled");
  } else if (j->failed) {
    lua_pushboolean(L, 0);
    lua_pushlstring(L, j->out.p ? j->out.p : "", j->out.len);
  } else {
    lua_pushcfunction(L, push_results);
    lua_pushlightuserdata(L, j);
    if (ty_pcall(L, 1, LUA_MULTRET) != LUA_OK) {
      lua_pushboolean(L, 0);
      lua_insert(L, -2);
    }
  }
  return lua_gettop(L) - top;
}

static void on_after_work(uv_work_t *w, int status) {
  job *j = (job *)w;
  unlink_job(j);
  lua_State *L = ty_host_get()->L;
  ty_task *t = j->task;
  lua_State *co = t ? ty_task_wakeable(t, j->tok) : NULL;
  int n = co ? collect(L, j, status) : 0;
  worker_put(j->W, j->generation);
  job_free(j);
  if (!co)
    return;
  if (!lua_checkstack(co, n)) {
    lua_pop(L, n);
    lua_pushboolean(co, 0);
    lua_pushliteral(co, "too many results from the thread");
    n = 2;
  } else {
    lua_xmove(L, co, n);
  }
  ty_task_resume(t, n);
}

/* The task went away: drop the result, and skip the work if it has not
 * started. The job may be gone already when the task ends after its wake
 * was dropped at shutdown, so look it up first. */
static void on_cancel(void *ud) {
  for (job *j = inflight.next; j != &inflight; j = j->next) {
    if (j != ud)
      continue;
    j->task = NULL;
    uv_cancel((uv_req_t *)&j->work);
    return;
  }
}

/* ---------------------------------------------------------------------- */
/* Submitting                                                             */

static int box_gc(lua_State *L) {
  job_box *b = lua_touserdata(L, 1);
  if (b->j)
    job_free(b->j);
  b->j = NULL;
  return 0;
}

static char *package_string(lua_State *L, const char *field) {
  lua_getglobal(L, "package");
  char *s = NULL;
  if (lua_istable(L, -1) && lua_getfield(L, -1, field) == LUA_TSTRING) {
    s = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return s;
}

/* Returns false, the message on top, 2: a misuse, which the Lua wrapper
 * raises at its caller's line. [-1, +3, m] */
static int misuse(lua_State *L) {
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  lua_pushinteger(L, 2);
  return 3;
}

/* run(fn_or_name, ...) -> true, results... | false, message[, level]
 * (yields). level 2 marks a misuse (bad argument, not in a task). */
static int l_run(lua_State *L) {
  int n = lua_gettop(L);
  int t1 = lua_type(L, 1);
  luaL_argexpected(L, t1 == LUA_TFUNCTION || t1 == LUA_TSTRING, 1,
                   "function or module name");
  if (!ty_task_current(L))
    return lua_pushliteral(L, "run must be called inside a task (use "
                              "tycho.spawn)"),
           misuse(L);
  if (stopping)
    return luaL_error(L, "tycho is shutting down");
  job_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->j = calloc(1, sizeof *b->j);
  luaL_setmetatable(L, JOB_MT);
  job *j = b->j;
  if (!j)
    return luaL_error(L, "not enough memory");
  j->by_name = t1 == LUA_TSTRING;
  j->nargs = n - 1;
  char err[256];
  int bad;
  if (ty__copy_encode(L, &j->in, 1, n, err, sizeof err, &bad) != 0)
    return lua_pushfstring(L, "bad argument #%d to 'run' (%s)", bad + 1, err),
           misuse(L);
  j->path = package_string(L, "path");
  j->cpath = package_string(L, "cpath");
  j->W = nidle > 0 ? idle_states[--nidle] : NULL;
  j->generation = generation;
  int rc = uv_queue_work(ty_loop(), &j->work, on_work, on_after_work);
  if (rc != 0) {
    worker_put(j->W, j->generation);
    j->W = NULL;
    return luaL_error(L, "cannot start a thread: %s", uv_strerror(rc));
  }
  b->j = NULL; /* libuv has it now */
  j->next = inflight.next;
  j->prev = &inflight;
  inflight.next->prev = j;
  inflight.next = j;
  j->task = ty_task_current(L);
  j->tok = ty_task_prepare(L);
  lua_settop(L, 0);
  return ty_task_park(L, on_cancel, j);
}

/* pool_size() -> threads in libuv's pool, as libuv reads it at startup. */
static int l_pool_size(lua_State *L) {
  const char *s = getenv("UV_THREADPOOL_SIZE");
  long n = s ? strtol(s, NULL, 10) : 4;
  if (n <= 0)
    n = 1;
  if (n > 1024)
    n = 1024;
  lua_pushinteger(L, n);
  return 1;
}

/* stats() -> {running = jobs in flight, idle_states = states kept} */
static int l_stats(lua_State *L) {
  int running = 0;
  for (job *j = inflight.next; j != &inflight; j = j->next)
    running++;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, nidle);
  lua_setfield(L, -2, "idle_states");
  return 1;
}

/* reset(): fresh worker states from now on. Idle ones are closed, running
 * ones when their job ends, so modules and globals they cached go away
 * (after a code reload, say). */
static int l_reset(lua_State *L) {
  (void)L;
  generation++;
  while (nidle > 0)
    lua_close(idle_states[--nidle]);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Shutdown                                                               */

/* Jobs not started are cancelled; running ones are interrupted at their
 * next Lua instruction, so teardown does not wait for a long computation.
 * Their after-work callbacks still run (the loop is drained) and close
 * the states, as do we here for the idle ones. */
static void pool_close(ty_closer *c) {
  (void)c;
  stopping = 1;
  atomic_store(&interrupting, 1);
  for (job *j = inflight.next; j != &inflight; j = j->next) {
    if (uv_cancel((uv_req_t *)&j->work) == 0)
      continue;
    lua_State *W = atomic_load(&j->live);
    if (W)
      lua_sethook(W, abort_hook, LUA_MASKCOUNT, 1);
  }
  while (nidle > 0)
    lua_close(idle_states[--nidle]);
}

int ty_thread_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"run", l_run},
                                   {"pool_size", l_pool_size},
                                   {"stats", l_stats},
                                   {"reset", l_reset},
                                   {NULL, NULL}};
  if (luaL_newmetatable(L, JOB_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (!opened) {
    opened = 1;
    stopping = 0;
    closer.close = pool_close;
    ty_host_track(&closer);
  }
  luaL_newlib(L, funcs);
  return 1;
}
