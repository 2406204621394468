/* thread.h: shared by the files of src/thread/: the byte buffer that
 * carries Lua values between states (copy.c), used by the worker pool
 * (pool.c). The loop watchdog (watchdog.c) needs nothing from here.
 */
#ifndef TY_THREAD_H
#define TY_THREAD_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest table nesting copied to or from a thread. */
#define TY_THREAD_DEPTH_MAX 100
#define TY_THREAD_DEPTH_MAX_STR "100"
/* Idle worker states kept for reuse; more are closed when they finish. */
#define TY_THREAD_STATES_MAX 16

typedef struct ty_copybuf {
  char *p;
  size_t len, cap;
} ty_copybuf;

/* Appends n bytes; 0, or -1 when out of memory (b is unchanged). */
int ty__copybuf_put(ty_copybuf *b, const void *p, size_t n);
void ty__copybuf_free(ty_copybuf *b);

/* Appends the n values from stack index first to b. On a value that cannot
 * be copied returns -1, with *bad its offset from first and err the reason
 * ("cannot copy a userdata value in field 'a.b'"). Raises only on memory
 * errors of L; b belongs to the caller either way. [-0, +0, m] */
int ty__copy_encode(lua_State *L, ty_copybuf *b, int first, int n, char *err,
                    size_t errlen, int *bad);

/* Pushes n values read from b at *pos and advances *pos. Raises on a
 * malformed buffer or a memory error. [-0, +n, e] */
int ty__copy_decode(lua_State *L, const ty_copybuf *b, size_t *pos, int n);

#endif
