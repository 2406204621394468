/* task.h: the scheduler's public face. A task is a Lua coroutine driven by
 * libuv callbacks: it parks on an operation and exactly one wake resumes it.
 */
#ifndef TY_TASK_H
#define TY_TASK_H

#include <lua.h>
#include <stdint.h>

typedef struct ty_task ty_task;

/* How a task ended; passed to its on_done hook. */
enum { TY_TASK_OK = 0, TY_TASK_ERROR = 1, TY_TASK_CANCELLED = 2 };

typedef void (*ty_task_done_fn)(ty_task *t, int how, void *ud);
typedef void (*ty_task_cancel_fn)(void *ud);

/* Creates a task from the function and nargs arguments on top of L (popped).
 * The task does not run until ty_task_run or ty_task_schedule. [-(nargs+1), +0,
 * m] */
ty_task *ty_task_new(lua_State *L, int nargs, const char *name);

/* Runs a new task now (from a libuv callback, never from inside a task). */
void ty_task_run(ty_task *t);
/* Queues a new task to start on the next loop iteration. */
void ty_task_schedule(ty_task *t);

/* The owner's hook, called once when the task ends; the coroutine's stack
 * then holds the results (TY_TASK_OK) or the error message with traceback. */
void ty_task_on_done(ty_task *t, ty_task_done_fn fn, void *ud);
lua_State *ty_task_thread(ty_task *t);
const char *ty_task_name(ty_task *t);

/* The coroutine of the task being resumed right now, or NULL. Safe to read
 * from any OS thread (the loop watchdog does); it may be stale there. */
lua_State *ty_task_running_thread(void);

/* The task whose coroutine is L, or NULL when L is not a running task. */
ty_task *ty_task_current(lua_State *L);

/* Parking, from a lua_CFunction running in a task:
 *   uint64_t tok = ty_task_prepare(L);   raises outside a task
 *   ...start the operation, remembering (task, tok)...
 *   return ty_task_park(L, on_cancel, ud);
 * The wake's values become the C function's results. */
uint64_t ty_task_prepare(lua_State *L);
int ty_task_park(lua_State *L, ty_task_cancel_fn on_cancel, void *ud);
/* Like ty_task_park, with the caller's own continuation k (lua_yieldk's):
 * after the wake, k runs with the woken values on top of the stack. A
 * cancelled task raises "cancelled" instead of running k. */
int ty_task_park_k(lua_State *L, ty_task_cancel_fn on_cancel, void *ud,
                   lua_KFunction k, lua_KContext ctx);

/* Waking: returns the coroutine to push values onto, or NULL if the task is
 * no longer parked on tok (ended, cancelled, resumed elsewhere): then drop
 * the result. After pushing n values, call ty_task_resume(t, n). */
lua_State *ty_task_wakeable(ty_task *t, uint64_t tok);
void ty_task_resume(ty_task *t, int n);

/* Cancels: a parked task is resumed with a "cancelled" error; a running one
 * gets it at its next park; a queued one never starts. */
void ty_task_cancel(ty_task *t);

/* Module registration and teardown. */
int ty_task_open(lua_State *L);
void ty_task_shutdown(void);

#endif
