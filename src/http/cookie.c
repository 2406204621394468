/* cookie.c: the request's cookies (RFC 6265 section 5.4, as browsers send
 * them). req.cookies is built from the Cookie header(s) the first time a
 * handler reads it (message.c caches the table with the other lazy fields).
 *
 * Parsing is lenient and never fails: pairs are split on ';', blanks around
 * names and values are dropped, one pair of surrounding double quotes is
 * removed from a value, a pair without '=' or whose name is not an RFC 9110
 * token is skipped, and a repeated name keeps its first value (the one with
 * the longest path, which is the order browsers send). Values are returned
 * as sent: no percent-decoding, so a value means the same thing whatever
 * encoding the app chose (tycho.http.url_decode is there for those that
 * encode).
 */
#include "http/http.h"

#include <lauxlib.h>
#include <string.h>
#include <strings.h>

static int is_blank(char ch) { return ch == ' ' || ch == '\t'; }

/* RFC 9110 tchar: the characters a cookie name may hold. */
static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
      (ch >= '0' && ch <= '9'))
    return 1;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_token(const char *s, size_t n) {
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i]))
      return 0;
  return 1;
}

/* s[*i..n) starts with blanks: skips them. */
static void skip_blanks(const char *s, size_t n, size_t *i) {
  while (*i < n && is_blank(s[*i]))
    (*i)++;
}

/* Trims blanks from the end of s[from..*to). */
static void trim_end(const char *s, size_t from, size_t *to) {
  while (*to > from && is_blank(s[*to - 1]))
    (*to)--;
}

/* Sets t[name] = value unless name is already there. [-0, +0, m] */
static void add_first(lua_State *L, int t, const char *name, size_t nlen,
                      const char *value, size_t vlen) {
  lua_pushlstring(L, name, nlen);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, t) != LUA_TNIL) {
    lua_pop(L, 2);
    return;
  }
  lua_pop(L, 1);
  lua_pushlstring(L, value, vlen);
  lua_rawset(L, t);
}

/* Adds the pairs of one Cookie header value s[0..n) to table t.
 * [-0, +0, m] */
static void parse_header(lua_State *L, int t, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t end = i;
    while (end < n && s[end] != ';')
      end++;
    size_t name = i;
    skip_blanks(s, end, &name);
    const char *eq = memchr(s + name, '=', end - name);
    if (eq) {
      size_t name_end = (size_t)(eq - s), value = name_end + 1, value_end = end;
      trim_end(s, name, &name_end);
      skip_blanks(s, value_end, &value);
      trim_end(s, value, &value_end);
      if (value_end - value >= 2 && s[value] == '"' && s[value_end - 1] == '"')
        value++, value_end--;
      if (is_token(s + name, name_end - name))
        add_first(L, t, s + name, name_end - name, s + value,
                  value_end - value);
    }
    i = end + 1;
  }
}

/* Pushes a new table of the request's cookies, from every Cookie header in
 * the order received. [-0, +1, m] */
void ty_cookies_push(lua_State *L, ty_req *r) {
  lua_newtable(L);
  int t = lua_gettop(L);
  for (size_t i = 0; i < r->nhdrs; i++) {
    ty_span *h = &r->hdrs[i];
    if (h->name_len == 6 && strncasecmp(r->head.p + h->name, "cookie", 6) == 0)
      parse_header(L, t, r->head.p + h->value, h->value_len);
  }
}
