/* json.h: tycho.json's encoder for C callers (res:json). */
#ifndef TY_JSON_H
#define TY_JSON_H

#include <lua.h>

/* Encodes the value at idx as tycho.json.encode does and pushes the text.
 * Raises, with the position of the Lua code that called the running C
 * function, on values JSON cannot hold. [-0, +1, e] */
void ty_json_encode(lua_State *L, int idx);

#endif
