/* alloc.h: the Lua state's allocator with a cap (tycho run --memory-limit,
 * tycho.http.serve{memory_limit_mb=}). */
#ifndef TY_ALLOC_H
#define TY_ALLOC_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/* Caps the state's memory at limit bytes (0 removes the cap). The first
 * call puts the counting allocator in place. [-0, +0, -] */
void ty_alloc_set_limit(lua_State *L, size_t limit);
size_t ty_alloc_limit(void);
size_t ty_alloc_used(void);
/* How many allocations the cap refused so far. */
uint64_t ty_alloc_refused(void);

#endif
