/* C tests for the scheduler's C API (src/core/task.c): a C function parks
 * its task on a libuv timer and the timer's callback wakes it with values;
 * a stale token is refused; cancelling a parked task runs its cancel hook
 * and never resumes it. */
#include "core/host.h"
#include "core/task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

typedef struct {
  uv_timer_t timer;
  ty_task *task;
  uint64_t tok;
  int cancel_calls;
} op;

static op the_op;

static void on_timer(uv_timer_t *t) {
  op *o = (op *)t;
  CHECK(ty_task_wakeable(o->task, o->tok + 1000) == NULL); /* wrong token */
  lua_State *co = ty_task_wakeable(o->task, o->tok);
  if (!co)
    return;
  lua_pushinteger(co, 42);
  lua_pushliteral(co, "woken");
  ty_task_resume(o->task, 2);
  CHECK(ty_task_wakeable(o->task, o->tok) == NULL); /* exactly once */
}

static void on_cancel(void *ud) {
  op *o = ud;
  o->cancel_calls++;
  uv_timer_stop(&o->timer);
}

/* wait(ms) -> 42, "woken": parks on a timer */
static int l_wait(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  the_op.tok = ty_task_prepare(L);
  the_op.task = ty_task_current(L);
  uv_timer_start(&the_op.timer, on_timer, (uint64_t)ms, 0);
  return ty_task_park(L, on_cancel, &the_op);
}

static int done_how = -1;
static void on_done(ty_task *t, int how, void *ud) {
  (void)ud;
  done_how = how;
  if (how == TY_TASK_OK) {
    lua_State *co = ty_task_thread(t);
    CHECK(lua_gettop(co) == 2);
    CHECK(lua_tointeger(co, 1) == 42);
    CHECK(strcmp(lua_tostring(co, 2), "woken") == 0);
  }
}

static ty_task *start(lua_State *L, const char *code) {
  CHECK(luaL_loadstring(L, code) == LUA_OK);
  ty_task *t = ty_task_new(L, 0, "test");
  ty_task_on_done(t, on_done, NULL);
  ty_task_run(t);
  return t;
}

int main(void) {
  CHECK(ty_host_init() == 0);
  lua_State *L = ty_host_get()->L;
  lua_pushcfunction(L, l_wait);
  lua_setglobal(L, "wait");
  uv_timer_init(ty_loop(), &the_op.timer);

  /* 1: park and wake with values */
  start(L, "return wait(5)");
  CHECK(done_how == -1); /* parked, not done */
  uv_run(ty_loop(), UV_RUN_DEFAULT);
  CHECK(done_how == TY_TASK_OK);

  /* 2: cancel a parked task: hook runs, task ends cancelled, no resume */
  done_how = -1;
  ty_task *t = start(L, "wait(10000) error('resumed after cancel')");
  CHECK(done_how == -1);
  ty_task_cancel(t);
  CHECK(the_op.cancel_calls == 1);
  CHECK(done_how == TY_TASK_CANCELLED);
  uv_run(ty_loop(), UV_RUN_NOWAIT);

  /* 3: parking outside a task is an error, not a crash */
  lua_pushcfunction(L, l_wait);
  lua_pushinteger(L, 1);
  CHECK(lua_pcall(L, 1, 0, 0) != LUA_OK);
  CHECK(strstr(lua_tostring(L, -1), "inside a task") != NULL);
  lua_pop(L, 1);

  uv_close((uv_handle_t *)&the_op.timer, NULL);
  ty_host_close();
  if (failures) {
    fprintf(stderr, "task_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("task_test: ok\n");
  return 0;
}
