/* C tests for the HTTP server's pure helpers: percent-decoding, query
 * parsing and the byte buffer (src/http/message.c, conn.c). */
#include "http/http.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

void ty_url_decode(lua_State *L, const char *s, size_t n, int plus);
void ty_query_parse(lua_State *L, const char *s, size_t n);

#include "check.h"

static void expect_decode(lua_State *L, const char *in, int plus,
                          const char *want, size_t want_len) {
  ty_url_decode(L, in, strlen(in), plus);
  size_t n;
  const char *got = lua_tolstring(L, -1, &n);
  if (n != want_len || memcmp(got, want, n) != 0) {
    fprintf(stderr, "decode(%s) = '%.*s', want '%.*s'\n", in, (int)n, got,
            (int)want_len, want);
    failures++;
  }
  lua_pop(L, 1);
}

static void test_decode(lua_State *L) {
  expect_decode(L, "/a%20b", 0, "/a b", 4);
  expect_decode(L, "a+b", 0, "a+b", 3);
  expect_decode(L, "a+b", 1, "a b", 3);
  expect_decode(L, "%2e%2E/", 0, "../", 3);
  expect_decode(L, "%00x", 0, "\0x", 2);
  /* malformed escapes stay as they are */
  expect_decode(L, "%", 0, "%", 1);
  expect_decode(L, "%4", 0, "%4", 2);
  expect_decode(L, "%zz", 0, "%zz", 3);
  expect_decode(L, "100%", 0, "100%", 4);
  expect_decode(L, "", 0, "", 0);
}

static const char *field(lua_State *L, const char *key) {
  lua_getfield(L, -1, key);
  const char *v = lua_tostring(L, -1);
  lua_pop(L, 1);
  return v;
}

static void test_query(lua_State *L) {
  const char *q = "a=1&b=hello+world&c=%41%42&empty=&flag&a=2&&=x";
  ty_query_parse(L, q, strlen(q));
  CHECK(lua_istable(L, -1));
  CHECK(strcmp(field(L, "b"), "hello world") == 0);
  CHECK(strcmp(field(L, "c"), "AB") == 0);
  CHECK(strcmp(field(L, "empty"), "") == 0);
  CHECK(strcmp(field(L, "flag"), "") == 0);
  CHECK(strcmp(field(L, ""), "x") == 0);
  lua_getfield(L, -1, "a"); /* repeated: a list in order */
  CHECK(lua_istable(L, -1) && lua_rawlen(L, -1) == 2);
  lua_rawgeti(L, -1, 1);
  CHECK(strcmp(lua_tostring(L, -1), "1") == 0);
  lua_rawgeti(L, -2, 2);
  CHECK(strcmp(lua_tostring(L, -1), "2") == 0);
  lua_pop(L, 4);
}

static void test_buf(void) {
  ty_buf b = {0};
  CHECK(ty_buf_add(&b, "", 0) == 0 && b.len == 0);
  for (int i = 0; i < 1000; i++)
    CHECK(ty_buf_add(&b, "0123456789", 10) == 0);
  CHECK(b.len == 10000 && b.cap >= 10000);
  CHECK(memcmp(b.p + 9990, "0123456789", 10) == 0);
  ty_buf_free(&b);
  CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
}

int main(void) {
  lua_State *L = luaL_newstate();
  test_decode(L);
  test_query(L);
  test_buf();
  lua_close(L);
  if (failures) {
    fprintf(stderr, "http_codec_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("http_codec_test: ok\n");
  return 0;
}
