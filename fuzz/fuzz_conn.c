/* fuzz_conn.c: libFuzzer target for one HTTP connection through the real
 * server code (src/http/conn.c, message.c, server.c): llhttp, limits,
 * dispatch to a Lua handler (fuzz_conn.lua) and response writing.
 *
 * Input: byte 0 says how many of the next bytes (0-7) are chunk sizes; the
 * rest is what the client sends, written to one end of a socket pair in
 * chunks of those sizes (cycling), with a loop turn between chunks, then a
 * half-close. Everything the server wrote back must parse as a sequence of
 * HTTP/1.x responses (llhttp in response mode), and the connection must be
 * closed and freed when the loop has run out of work.
 */
#define _GNU_SOURCE /* memmem */
#include "core/host.h"
#include "llhttp.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef FUZZ_DIR
#define FUZZ_DIR "fuzz"
#endif

#define MAX_TURNS 2000 /* loop turns allowed to finish after the half-close */

static int start_ref = LUA_NOREF;
static char *out;
static size_t out_len, out_cap;

static void setup(lua_State *L) {
  if (luaL_loadfile(L, FUZZ_DIR "/fuzz_conn.lua") != LUA_OK ||
      ty_pcall(L, 0, 1) != LUA_OK) {
    fprintf(stderr, "fuzz_conn: %s\n", lua_tostring(L, -1));
    abort();
  }
  start_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Reads what the server wrote so far (the client end is non-blocking). */
static void drain(int fd) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      return;
    if (out_len + (size_t)n > out_cap) {
      out_cap = (out_len + (size_t)n) * 2;
      out = realloc(out, out_cap);
      if (!out)
        abort();
    }
    memcpy(out + out_len, buf, (size_t)n);
    out_len += (size_t)n;
  }
}

static void turn(int fd) {
  uv_run(ty_loop(), UV_RUN_NOWAIT);
  drain(fd);
}

static void send_chunk(int fd, const unsigned char *p, size_t n) {
  for (int tries = 0; n > 0 && tries < 50; tries++) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN) {
      return; /* the server closed: the rest is not wanted */
    }
    turn(fd);
  }
}

static int on_response_body(llhttp_t *p, const char *at, size_t n) {
  (void)p, (void)at, (void)n;
  return 0;
}

/* Everything written must be well-formed responses. HEAD responses carry a
 * Content-Length without a body, which a response parser cannot know. */
static void check_output(const unsigned char *in, size_t in_len) {
  if (out_len == 0 || memmem(in, in_len, "HEAD", 4))
    return;
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_body = on_response_body;
  llhttp_t p;
  llhttp_init(&p, HTTP_RESPONSE, &s);
  llhttp_errno_t err = llhttp_execute(&p, out, out_len);
  if (err == HPE_OK)
    err = llhttp_finish(&p);
  if (err != HPE_OK && err != HPE_PAUSED_UPGRADE) {
    fprintf(stderr,
            "fuzz_conn: server wrote a malformed response (%s: %s):\n%.*s\n",
            llhttp_errno_name(err), llhttp_get_error_reason(&p),
            (int)(out_len > 2000 ? 2000 : out_len), out);
    abort();
  }
}

static int connections(lua_State *L, int srv) {
  lua_getfield(L, srv, "connections");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (start_ref == LUA_NOREF) {
    if (ty_host_init() != 0)
      abort();
    setup(ty_host_get()->L);
  }
  lua_State *L = ty_host_get()->L;
  size_t nsizes = size ? (data[0] & 7) : 0;
  if (size < 1 + nsizes)
    return 0;
  const unsigned char *sizes = data + 1, *in = data + 1 + nsizes;
  size_t in_len = size - 1 - nsizes;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    abort();
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  lua_rawgeti(L, LUA_REGISTRYINDEX, start_ref);
  lua_pushinteger(L, sv[0]);
  if (ty_pcall(L, 1, 1) != LUA_OK || lua_isnil(L, -1)) {
    fprintf(stderr, "fuzz_conn: inject failed: %s\n", lua_tostring(L, -1));
    abort();
  }
  int srv = lua_gettop(L);
  out_len = 0;
  size_t pos = 0, k = 0;
  while (pos < in_len) {
    size_t n = nsizes ? (size_t)sizes[k++ % nsizes] + 1 : in_len - pos;
    if (n > in_len - pos)
      n = in_len - pos;
    send_chunk(sv[1], in + pos, n);
    pos += n;
    turn(sv[1]);
  }
  shutdown(sv[1], SHUT_WR);
  int turns = 0;
  while (connections(L, srv) > 0 && turns++ < MAX_TURNS)
    turn(sv[1]);
  if (connections(L, srv) > 0) {
    fprintf(stderr, "fuzz_conn: connection still open after the client left\n");
    abort();
  }
  turn(sv[1]);
  check_output(in, in_len);
  close(sv[1]);
  lua_settop(L, 0);
  static unsigned runs;
  if (++runs % 256 == 0)
    lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
