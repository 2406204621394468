/* websocket.c: WebSocket (RFC 6455) connections, server and client side.
 * Owns framing (masking, fragmentation, control frames interleaved in
 * fragmented messages, automatic pongs, the close handshake with codes,
 * UTF-8 validation of text, size limits), keep-alive pings and the idle
 * timeout, the connection's reads and writes once it is upgraded, the SHA-1
 * and base64 of Sec-WebSocket-Accept, and the Lua `ws` object. With
 * permessage-deflate negotiated (by lua/tycho/ws.lua), it frames compressed
 * messages (RSV1 on their first frame) around ws_deflate.c's zlib streams.
 *
 * Server side: req:websocket{} (lua/tycho/ws.lua validates the handshake)
 * calls accept(), which writes the 101 response and marks the ty_conn
 * upgraded; at the end of the read that delivered the request (or at once
 * when the handler upgrades later) ty_ws_takeover moves the bytes read past
 * the request into the ws and starts our own read callback. The ty_conn
 * stays in its server's list (so server:close() and teardown reach it) and
 * is still freed by conn.c's close callback, which tells us first
 * (ty_ws_conn_gone). The handle is closed only once the handler task has
 * ended, so closing a websocket never cancels the task using it.
 *
 * Client side: connect() owns a uv_tcp_t of its own and a ty_closer.
 *
 * Lifetime: a ty_ws is freed when its Lua box was collected, its stream is
 * gone and its timer is closed, whichever happens last.
 */
#define _GNU_SOURCE /* memmem */
#include "core/limits.h"
#include "http/http.h"
#include "http/ws_deflate.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_MT "tycho.ws"

#define WS_MAX_MESSAGE (16 * 1024 * 1024) /* default -> 1009 */
#define WS_PING_INTERVAL_MS 30000         /* keep-alive ping when idle */
#define WS_IDLE_TIMEOUT_MS 75000          /* nothing received -> close */
#define WS_CLOSE_TIMEOUT_MS 5000          /* wait for the peer's close */
#define WS_PONG_TIMEOUT_MS 30000          /* ws:ping() default */
#define WS_QUEUE_HIGH (1024 * 1024)       /* unreceived bytes: stop reading */
#define WS_HEAD_MAX (16 * 1024)           /* client: response head */
#define WS_LINGER_MS 2000 /* after our FIN: read and drop until the peer's */
#define WS_KEEP_BUF (1024 * 1024) /* larger message buffers are not kept */
#define RSV1 0x40                 /* permessage-deflate: compressed */

enum { ST_CONNECTING, ST_OPEN, ST_CLOSING, ST_CLOSED };
enum {
  OP_CONT = 0,
  OP_TEXT = 1,
  OP_BINARY = 2,
  OP_CLOSE = 8,
  OP_PING = 9,
  OP_PONG = 10
};

typedef struct ws_msg {
  struct ws_msg *next;
  size_t len;
  int binary;
  char data[];
} ws_msg;

/* A task parked on one of the ws's events. */
typedef struct {
  ty_task *task;
  uint64_t tok;
} waiter;

typedef struct ty_ws {
  uv_stream_t *stream; /* NULL once the handle is gone */
  ty_conn *conn;       /* server side */
  uv_tcp_t *tcp;       /* client side: our own handle */
  ty_closer closer;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  uv_connect_t creq;
  ty_buf in, out, wbuf, frag;
  ty_buf zbuf; /* a compressed message being framed */
  ty_wsd *pmd; /* permessage-deflate, when negotiated */
  ws_msg *head, *tail;
  size_t queued;
  int frag_op;
  int frag_z; /* the message in frag arrives compressed */
  int state;
  unsigned client : 1, writing : 1, shut : 1, shutting : 1, handler_done : 1,
      boxed : 1, timer_open : 1, read_paused : 1, taken : 1, eof : 1,
      lingered : 1;
  size_t max_message;
  uint64_t ping_ms, idle_ms, last_rx, last_ping, close_deadline;
  uint64_t last_tx;       /* loop ms of the last write progress */
  uint64_t pong_deadline; /* ws:ping() gives up then */
  uint64_t ping_sent_ns;
  int pong_timed_out;
  int hs_err;       /* client: connect/handshake failure (libuv code) */
  int code;         /* close code receive() reports */
  char reason[128]; /* and its reason */
  waiter recv, drain, pong, closed, hs;
} ty_ws;

typedef struct {
  ty_ws *ws;
} ws_box;

static char read_buf[TY_READ_BUFFER];

/* ---------------------------------------------------------------------- */
/* SHA-1 (FIPS 180-4) and base64, for Sec-WebSocket-Accept                */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++)
    w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20)
      f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40)
      f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60)
      f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else
      f = b ^ c ^ d, k = 0xCA62C1D6;
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d, d = c, c = rol(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

/* The 20-byte SHA-1 digest of p[0..n). */
static void sha1(const void *data, size_t n, unsigned char out[20]) {
  const unsigned char *p = data;
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t done = 0;
  for (; n - done >= 64; done += 64)
    sha1_block(h, p + done);
  unsigned char last[128] = {0};
  size_t rest = n - done;
  memcpy(last, p + done, rest);
  last[rest] = 0x80;
  size_t total = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++)
    last[total - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, last);
  if (total == 128)
    sha1_block(h, last + 64);
  for (int i = 0; i < 20; i++)
    out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Base64 of p[0..n) into out (room for 4*ceil(n/3)+1); returns its length. */
static size_t base64(const unsigned char *p, size_t n, char *out) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? abc[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

/* ---------------------------------------------------------------------- */
/* UTF-8 validation: shortest forms only, no surrogates, <= U+10FFFF       */

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
      need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0)
        lo = 0xA0;
      if (c == 0xED)
        hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0)
        lo = 0x90;
      if (c == 0xF4)
        hi = 0x8F;
    } else
      return 0;
    if (i + need >= n)
      return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return 0;
    for (size_t k = 2; k <= need; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
    i += need + 1;
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Waiters                                                                */

static void wake(waiter *w) {
  ty_task *t = w->task;
  uint64_t tok = w->tok;
  if (!t)
    return;
  w->task = NULL;
  w->tok = 0;
  if (ty_task_wakeable(t, tok))
    ty_task_resume(t, 0);
}

static void wake_all(ty_ws *ws) {
  wake(&ws->recv);
  wake(&ws->drain);
  wake(&ws->pong);
  wake(&ws->closed);
  wake(&ws->hs);
}

static void cancel_wait(void *ud) {
  waiter *w = ud;
  w->task = NULL;
  w->tok = 0;
}

/* Parks the calling task on w; k runs after the wake. Raises when another
 * task already waits there. */
static int park_on(lua_State *L, waiter *w, const char *what, lua_KFunction k) {
  if (w->task)
    return luaL_error(L, "another task is already in ws:%s()", what);
  w->tok = ty_task_prepare(L);
  w->task = ty_task_current(L);
  return ty_task_park_k(L, cancel_wait, w, k, 0);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */

static void free_queue(ty_ws *ws) {
  while (ws->head) {
    ws_msg *m = ws->head;
    ws->head = m->next;
    free(m);
  }
  ws->tail = NULL;
  ws->queued = 0;
}

static void maybe_free(ty_ws *ws) {
  if (ws->boxed || ws->stream || ws->timer_open)
    return;
  ty_host_untrack(&ws->closer);
  free_queue(ws);
  ty_buf_free(&ws->in);
  ty_buf_free(&ws->out);
  ty_buf_free(&ws->wbuf);
  ty_buf_free(&ws->frag);
  ty_buf_free(&ws->zbuf);
  ty_wsd_free(ws->pmd);
  free(ws);
}

static void on_timer_closed(uv_handle_t *h) {
  ty_ws *ws = h->data;
  ws->timer_open = 0;
  maybe_free(ws);
}

static void close_timer(ty_ws *ws) {
  if (ws->timer_open && !uv_is_closing((uv_handle_t *)&ws->timer))
    uv_close((uv_handle_t *)&ws->timer, on_timer_closed);
}

static void on_tcp_closed(uv_handle_t *h) {
  ty_ws *ws = h->data;
  free(h);
  ws->tcp = NULL;
  ws->stream = NULL;
  ty_host_untrack(&ws->closer);
  close_timer(ws);
  wake_all(ws);
  maybe_free(ws);
}

/* Closed: no message will be compressed or inflated any more, so the zlib
 * streams go now rather than with the ws. */
static void set_closed(ty_ws *ws, int code, const char *reason, size_t len) {
  if (ws->state == ST_CLOSED)
    return;
  ws->state = ST_CLOSED;
  ty_wsd_free(ws->pmd);
  ws->pmd = NULL;
  ty_buf_free(&ws->zbuf);
  ws->code = code;
  if (len >= sizeof ws->reason)
    len = sizeof ws->reason - 1;
  memcpy(ws->reason, reason, len);
  ws->reason[len] = '\0';
}

/* The stream is done with: a server conn closes once its handler ended
 * (conn.c frees it and calls ty_ws_conn_gone); a client closes its own. */
static void release_stream(ty_ws *ws) {
  if (ws->timer_open && !uv_is_closing((uv_handle_t *)&ws->timer))
    uv_timer_stop(&ws->timer);
  if (ws->conn) {
    if (ws->handler_done)
      ty_conn_close(ws->conn);
    return;
  }
  if (ws->tcp && !uv_is_closing((uv_handle_t *)ws->tcp))
    uv_close((uv_handle_t *)ws->tcp, on_tcp_closed);
}

/* Ends the connection now, without a close handshake (1006). */
static void abort_ws(ty_ws *ws, int code, const char *why) {
  set_closed(ws, code, why, strlen(why));
  ws->shut = ws->eof = 1;
  if (ws->stream)
    uv_read_stop(ws->stream);
  release_stream(ws);
  wake_all(ws);
}

/* Our FIN is out: the socket closes when the peer's arrives, or after the
 * linger time. Closing with unread bytes would send a reset, which can
 * destroy our close frame before the peer reads it. */
static void maybe_release(ty_ws *ws) {
  if (ws->shut && (ws->eof || ws->lingered))
    release_stream(ws);
}

static void on_timer(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *s, int status) {
  ty_ws *ws = s->data;
  ws->shut = 1;
  ws->shutting = 0;
  if (status < 0)
    ws->eof = 1;
  if (ws->timer_open && !uv_is_closing((uv_handle_t *)&ws->timer))
    uv_timer_start(&ws->timer, on_timer, WS_LINGER_MS, 0);
  maybe_release(ws);
}

/* After the close handshake: send what is queued, then FIN. */
static void finish(ty_ws *ws) {
  if (ws->shut || ws->shutting || !ws->stream)
    return;
  if (ws->writing || ws->out.len)
    return; /* on_write comes back here */
  ws->shutting = 1;
  ws->sreq.data = ws;
  if (uv_shutdown(&ws->sreq, ws->stream, on_shutdown) != 0) {
    ws->shutting = 0;
    ws->shut = ws->eof = 1;
    release_stream(ws);
  }
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                */

static void flush(ty_ws *ws);

static void wake_drain(ty_ws *ws) {
  if (ws->out.len + ws->wbuf.len <= TY_WRITE_HIGH_WATER / 2)
    wake(&ws->drain);
}

static void on_write(uv_write_t *w, int status) {
  ty_ws *ws = w->data;
  ws->writing = 0;
  ws->wbuf.len = 0;
  if (status < 0) {
    abort_ws(ws, 1006, "write failed");
    return;
  }
  ws->last_tx = uv_now(ty_loop());
  flush(ws);
  wake_drain(ws);
  if (ws->state == ST_CLOSED)
    finish(ws);
}

static void flush(ty_ws *ws) {
  if (ws->writing || ws->out.len == 0 || !ws->stream || ws->shut ||
      ws->shutting)
    return;
  uv_buf_t b = uv_buf_init(ws->out.p, (unsigned)ws->out.len);
  int n = uv_try_write(ws->stream, &b, 1);
  if (n == (int)ws->out.len) {
    ws->out.len = 0;
    ws->last_tx = uv_now(ty_loop());
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    abort_ws(ws, 1006, "write failed");
    return;
  }
  if (n < 0)
    n = 0;
  ty_buf t = ws->wbuf;
  ws->wbuf = ws->out;
  ws->out = t;
  ws->out.len = 0;
  if (n > 0) {
    memmove(ws->wbuf.p, ws->wbuf.p + n, ws->wbuf.len - (size_t)n);
    ws->wbuf.len -= (size_t)n;
  }
  b = uv_buf_init(ws->wbuf.p, (unsigned)ws->wbuf.len);
  ws->writing = 1;
  ws->last_tx = uv_now(ty_loop()); /* a stall is counted from here */
  ws->wreq.data = ws;
  if (uv_write(&ws->wreq, ws->stream, &b, 1, on_write) != 0) {
    ws->writing = 0;
    abort_ws(ws, 1006, "write failed");
  }
}

/* Appends one frame; a client masks it. op may carry RSV1. Returns 0 or -1
 * (no memory). */
static int put_frame(ty_ws *ws, int op, const void *data, size_t len) {
  unsigned char h[14];
  size_t n = 2;
  h[0] = (unsigned char)(0x80 | op);
  if (len < 126) {
    h[1] = (unsigned char)len;
  } else if (len <= 0xFFFF) {
    h[1] = 126;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)len;
    n = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    n = 10;
  }
  unsigned char key[4] = {0};
  if (ws->client) {
    h[1] |= 0x80;
    uv_random(NULL, NULL, key, 4, 0, NULL);
    memcpy(h + n, key, 4);
    n += 4;
  }
  if (ty_buf_reserve(&ws->out, n + len) != 0)
    return -1;
  ty_buf_add(&ws->out, h, n);
  char *dst = ws->out.p + ws->out.len;
  if (len)
    memcpy(dst, data, len);
  if (ws->client)
    for (size_t i = 0; i < len; i++)
      dst[i] ^= (char)key[i & 3];
  ws->out.len += len;
  return 0;
}

/* Sends a close frame with code (0: none) and reason. */
static void put_close(ty_ws *ws, int code, const char *reason, size_t len) {
  char body[125];
  size_t n = 0;
  if (code) {
    if (len > sizeof body - 2)
      len = sizeof body - 2;
    body[0] = (char)(code >> 8);
    body[1] = (char)(code & 0xFF);
    memcpy(body + 2, reason, len);
    n = len + 2;
  }
  put_frame(ws, OP_CLOSE, body, n);
}

static void arm(ty_ws *ws);

/* Closed: our last frames and FIN must go out by the close timeout (a peer
 * that does not read could hold them forever). */
static void closed_deadline(ty_ws *ws) {
  ws->close_deadline = uv_now(ty_loop()) + WS_CLOSE_TIMEOUT_MS;
  arm(ws);
}

/* Fails the connection (RFC 6455 7.1.7): close frame with code, then FIN. */
static void fail(ty_ws *ws, int code, const char *why) {
  if (ws->state == ST_OPEN)
    put_close(ws, code, why, strlen(why));
  set_closed(ws, code, why, strlen(why));
  ws->in.len = 0;
  closed_deadline(ws);
  flush(ws);
  finish(ws);
  wake_all(ws);
}

/* ---------------------------------------------------------------------- */
/* Timer: handshake timeout, keep-alive pings, idle and close timeouts    */

static void arm(ty_ws *ws) {
  if (!ws->timer_open || uv_is_closing((uv_handle_t *)&ws->timer))
    return;
  uint64_t now = uv_now(ws->timer.loop), due = UINT64_MAX;
  if (ws->state == ST_CLOSING || (ws->state == ST_CLOSED && !ws->shut))
    due = ws->close_deadline;
  else if (ws->state == ST_OPEN) {
    if (ws->idle_ms)
      due = ws->last_rx + ws->idle_ms;
    if (ws->idle_ms && ws->writing && ws->last_tx + ws->idle_ms < due)
      due = ws->last_tx + ws->idle_ms;
    if (ws->ping_ms) {
      uint64_t last = ws->last_rx > ws->last_ping ? ws->last_rx : ws->last_ping;
      if (last + ws->ping_ms < due)
        due = last + ws->ping_ms;
    }
    if (ws->pong_deadline && ws->pong_deadline < due)
      due = ws->pong_deadline;
  } else
    return;
  if (due == UINT64_MAX)
    return;
  uv_timer_start(&ws->timer, on_timer, due > now ? due - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
  ty_ws *ws = t->data;
  uint64_t now = uv_now(t->loop);
  if (ws->state == ST_CLOSED) {
    if (!ws->shut) { /* our close frame or FIN could not be sent in time */
      abort_ws(ws, ws->code, ws->reason);
      return;
    }
    ws->lingered = 1; /* the linger time after our FIN is over */
    maybe_release(ws);
    return;
  }
  if (ws->state == ST_CONNECTING) {
    ws->hs_err = UV_ETIMEDOUT;
    abort_ws(ws, 1006, "handshake timed out");
    return;
  }
  if (ws->state == ST_CLOSING && now >= ws->close_deadline) {
    abort_ws(ws, 1006, "close handshake timed out");
    return;
  }
  if (ws->state == ST_OPEN && ws->idle_ms && now >= ws->last_rx + ws->idle_ms) {
    fail(ws, 1001, "idle timeout");
    return;
  }
  if (ws->state == ST_OPEN && ws->idle_ms && ws->writing &&
      now >= ws->last_tx + ws->idle_ms) {
    abort_ws(ws, 1006, "peer stopped reading");
    return;
  }
  if (ws->state == ST_OPEN && ws->pong_deadline && now >= ws->pong_deadline) {
    ws->pong_deadline = 0;
    ws->pong_timed_out = 1;
    wake(&ws->pong);
  }
  if (ws->state == ST_OPEN && ws->ping_ms) {
    uint64_t last = ws->last_rx > ws->last_ping ? ws->last_rx : ws->last_ping;
    if (now >= last + ws->ping_ms) {
      ws->last_ping = now;
      put_frame(ws, OP_PING, "", 0);
      flush(ws);
    }
  }
  arm(ws);
}

/* ---------------------------------------------------------------------- */
/* Reading and framing                                                    */

static void queue_msg(ty_ws *ws, const char *p, size_t len, int binary) {
  ws_msg *m = malloc(sizeof *m + len);
  if (!m) {
    fail(ws, 1011, "out of memory");
    return;
  }
  m->next = NULL;
  m->len = len;
  m->binary = binary;
  memcpy(m->data, p, len);
  if (ws->tail)
    ws->tail->next = m;
  else
    ws->head = m;
  ws->tail = m;
  ws->queued += len + 1;
}

static void message(ty_ws *ws, int op, const char *p, size_t len) {
  if (op == OP_TEXT && !utf8_valid((const unsigned char *)p, len)) {
    fail(ws, 1007, "invalid UTF-8 in text message");
    return;
  }
  queue_msg(ws, p, len, op == OP_BINARY);
}

static int valid_code(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static void on_close_frame(ty_ws *ws, const unsigned char *p, size_t len) {
  int code = 1005;
  if (len == 1) {
    fail(ws, 1002, "close frame with a 1-byte body");
    return;
  }
  if (len >= 2) {
    code = p[0] << 8 | p[1];
    if (!valid_code(code)) {
      fail(ws, 1002, "invalid close code");
      return;
    }
    if (!utf8_valid(p + 2, len - 2)) {
      fail(ws, 1007, "invalid UTF-8 in close reason");
      return;
    }
  }
  if (ws->state == ST_OPEN) /* echo the code: the handshake completes */
    put_close(ws, code == 1005 ? 0 : code, "", 0);
  set_closed(ws, code, len > 2 ? (const char *)p + 2 : "",
             len > 2 ? len - 2 : 0);
  closed_deadline(ws);
  flush(ws);
  finish(ws);
}

static void on_control(ty_ws *ws, int op, unsigned char *p, size_t len) {
  if (op == OP_CLOSE) {
    on_close_frame(ws, p, len);
  } else if (op == OP_PING) {
    if (ws->state == ST_OPEN) {
      put_frame(ws, OP_PONG, p, len);
      flush(ws);
    }
  } else if (ws->pong.task) { /* OP_PONG answers our ws:ping() */
    ws->pong_deadline = 0;
    wake(&ws->pong);
  }
}

/* Inflates a compressed message's frame onto frag; 0, or -1 when the
 * connection failed. */
static int inflate_frame(ty_ws *ws, int fin, const char *p, size_t len) {
  int rc = ty_wsd_inflate(ws->pmd, p, len, fin, &ws->frag, ws->max_message);
  if (rc == TY_WSD_TOO_BIG)
    fail(ws, 1009, "message too big");
  else if (rc == TY_WSD_CORRUPT)
    fail(ws, 1007, "invalid compressed data");
  else if (rc != TY_WSD_OK)
    fail(ws, 1011, "out of memory");
  return rc == TY_WSD_OK ? 0 : -1;
}

/* A data frame: z says its message is compressed (RSV1 on its first
 * frame). Messages gather in frag unless they come whole and plain. */
static void on_data_frame(ty_ws *ws, int op, int fin, int z, const char *p,
                          size_t len) {
  if (op == OP_CONT && !ws->frag_op) {
    fail(ws, 1002, "continuation frame without a message");
    return;
  }
  if (op != OP_CONT && ws->frag_op) {
    fail(ws, 1002, "new message inside a fragmented one");
    return;
  }
  if (op != OP_CONT && fin && !z) {
    message(ws, op, p, len);
    return;
  }
  if (op != OP_CONT) {
    ws->frag_op = op;
    ws->frag_z = z;
    ws->frag.len = 0;
  }
  if (ws->frag_z) {
    if (inflate_frame(ws, fin, p, len) != 0)
      return;
  } else if (ty_buf_add(&ws->frag, p, len) != 0) {
    fail(ws, 1011, "out of memory");
    return;
  }
  if (!fin)
    return;
  int mop = ws->frag_op;
  size_t mlen = ws->frag.len;
  ws->frag_op = 0;
  ws->frag.len = 0;
  message(ws, mop, ws->frag.p, mlen);
  if (ws->frag.cap > WS_KEEP_BUF)
    ty_buf_free(&ws->frag);
}

/* RSV1 is permessage-deflate's, and only on a message's first frame;
 * RSV2/3 belong to no extension we speak. Returns 0 or -1 (failed). */
static int check_rsv(ty_ws *ws, int b0) {
  int op = b0 & 0x0F;
  if (b0 & 0x30)
    return fail(ws, 1002, "reserved bits set"), -1;
  if (!(b0 & RSV1))
    return 0;
  if (!ws->pmd)
    return fail(ws, 1002, "RSV1 set without permessage-deflate"), -1;
  if (op & 8)
    return fail(ws, 1002, "RSV1 set on a control frame"), -1;
  if (op == OP_CONT)
    return fail(ws, 1002, "RSV1 set on a continuation frame"), -1;
  return 0;
}

/* Is a frame of len bytes over the message limit? A compressed frame is
 * inflated as it comes, so only its own size counts (deflate may grow
 * incompressible data a little); plain fragments add up. */
static int too_big(ty_ws *ws, int op, int z, uint64_t len) {
  size_t max = ws->max_message;
  if (z)
    return len > max + (max >> 10) + 64;
  return len + ws->frag.len * (op == OP_CONT) > max;
}

/* Handles the frame at p[0..n) if complete. Returns the bytes it used, 0
 * when more are needed, -1 when the connection failed. */
static ssize_t frame(ty_ws *ws, unsigned char *p, size_t n) {
  if (n < 2)
    return 0;
  int fin = p[0] & 0x80, op = p[0] & 0x0F, masked = p[1] & 0x80;
  uint64_t len = p[1] & 0x7F;
  size_t hl = 2;
  if (check_rsv(ws, p[0]) != 0)
    return -1;
  int z = (p[0] & RSV1) || (op == OP_CONT && ws->frag_op && ws->frag_z);
  if ((op > 2 && op < 8) || op > 10)
    return fail(ws, 1002, "unknown opcode"), -1;
  if (op & 8) {
    if (!fin)
      return fail(ws, 1002, "fragmented control frame"), -1;
    if (len > 125)
      return fail(ws, 1002, "control frame over 125 bytes"), -1;
  }
  if (!ws->client && !masked)
    return fail(ws, 1002, "unmasked client frame"), -1;
  if (ws->client && masked)
    return fail(ws, 1002, "masked server frame"), -1;
  if (len == 126) {
    if (n < 4)
      return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (len == 127) {
    if (n < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | p[2 + i];
    if (len >> 63)
      return fail(ws, 1002, "frame length out of range"), -1;
    hl = 10;
  }
  if (!(op & 8) && too_big(ws, op, z, len))
    return fail(ws, 1009, "message too big"), -1;
  if (masked)
    hl += 4;
  if (n < hl || n - hl < len)
    return 0;
  unsigned char *data = p + hl;
  if (masked) {
    const unsigned char *key = p + hl - 4;
    for (size_t i = 0; i < len; i++)
      data[i] ^= key[i & 3];
  }
  ws->last_rx = uv_now(ty_loop());
  if (op & 8)
    on_control(ws, op, data, (size_t)len);
  else
    on_data_frame(ws, op, fin, z, (const char *)data, (size_t)len);
  return ws->state == ST_CLOSED ? -1 : (ssize_t)(hl + len);
}

/* Parses frames from p[0..n); the unused tail is kept in ws->in. */
static void process(ty_ws *ws, unsigned char *p, size_t n, int from_in) {
  size_t off = 0;
  while (off < n && (ws->state == ST_OPEN || ws->state == ST_CLOSING)) {
    ssize_t used = frame(ws, p + off, n - off);
    if (used <= 0) {
      if (used < 0)
        off = n;
      break;
    }
    off += (size_t)used;
  }
  if (ws->state == ST_CLOSED)
    off = n;
  if (from_in) {
    memmove(ws->in.p, ws->in.p + off, n - off);
    ws->in.len = n - off;
  } else if (off < n && ty_buf_add(&ws->in, p + off, n - off) != 0) {
    abort_ws(ws, 1006, "out of memory");
  }
  if (ws->queued > WS_QUEUE_HIGH && ws->stream && ws->state != ST_CLOSED) {
    uv_read_stop(ws->stream);
    ws->read_paused = 1;
  }
  if (ws->head || ws->state == ST_CLOSED)
    wake(&ws->recv);
  if (ws->state == ST_CLOSED)
    wake_all(ws);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

/* Client: the response head arrived, or the bytes so far are too many. */
static void handshake_read(ty_ws *ws) {
  if (ws->in.len >= 4 && memmem(ws->in.p, ws->in.len, "\r\n\r\n", 4)) {
    uv_read_stop(ws->stream);
    wake(&ws->hs);
  } else if (ws->in.len > WS_HEAD_MAX) {
    ws->hs_err = UV_E2BIG;
    abort_ws(ws, 1006, "response head too large");
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ty_ws *ws = s->data;
  if (nread < 0) {
    if (ws->state == ST_CONNECTING)
      ws->hs_err = (int)nread;
    if (ws->state == ST_CLOSED) { /* the peer's FIN after the handshake */
      ws->eof = 1;
      uv_read_stop(s);
      maybe_release(ws);
      return;
    }
    abort_ws(ws, 1006, "connection lost");
    return;
  }
  if (nread == 0)
    return;
  if (ws->state == ST_CONNECTING) {
    if (ty_buf_add(&ws->in, buf->base, (size_t)nread) != 0)
      ws->hs_err = UV_ENOMEM;
    handshake_read(ws);
    return;
  }
  if (ws->state == ST_CLOSED)
    return; /* lingering: dropped */
  if (ws->in.len == 0) {
    process(ws, (unsigned char *)buf->base, (size_t)nread, 0);
  } else if (ty_buf_add(&ws->in, buf->base, (size_t)nread) != 0) {
    abort_ws(ws, 1006, "out of memory");
  } else {
    process(ws, (unsigned char *)ws->in.p, ws->in.len, 1);
  }
}

static void start_reading(ty_ws *ws) {
  if (!ws->stream || ws->state == ST_CLOSED)
    return;
  ws->read_paused = 0;
  uv_read_start(ws->stream, on_alloc, on_read);
}

/* ---------------------------------------------------------------------- */
/* Creation, and the hooks conn.c and server.c call                       */

static void closer_close(ty_closer *cl) {
  ty_ws *ws = (ty_ws *)((char *)cl - offsetof(ty_ws, closer));
  close_timer(ws);
  if (ws->conn && !ws->conn->closing)
    ty_conn_close(ws->conn);
  if (ws->tcp && !uv_is_closing((uv_handle_t *)ws->tcp))
    uv_close((uv_handle_t *)ws->tcp, on_tcp_closed);
}

static ty_ws *ws_new(lua_State *L) {
  ty_ws *ws = calloc(1, sizeof *ws);
  if (!ws)
    luaL_error(L, "out of memory");
  ws_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->ws = ws;
  luaL_setmetatable(L, WS_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  ws->boxed = 1;
  ws->max_message = WS_MAX_MESSAGE;
  ws->ping_ms = WS_PING_INTERVAL_MS;
  ws->idle_ms = WS_IDLE_TIMEOUT_MS;
  uv_timer_init(ty_loop(), &ws->timer);
  ws->timer.data = ws;
  ws->timer_open = 1;
  ws->closer.close = closer_close;
  ty_host_track(&ws->closer);
  return ws;
}

static void open_ws(ty_ws *ws) {
  ws->state = ST_OPEN;
  ws->last_rx = ws->last_ping = uv_now(ty_loop());
  arm(ws);
}

void ty_ws_takeover(ty_conn *c) {
  ty_ws *ws = c->h.stream.data;
  if (!ws || ws->taken)
    return;
  ws->taken = 1;
  ws->in = c->in; /* bytes read past the request are the first frames */
  memset(&c->in, 0, sizeof c->in);
  uv_read_stop(&c->h.stream);
  start_reading(ws);
  flush(ws);
  if (ws->in.len)
    process(ws, (unsigned char *)ws->in.p, ws->in.len, 1);
}

void ty_ws_handler_done(ty_conn *c) {
  ty_ws *ws = c->h.stream.data;
  if (!ws)
    return;
  ws->handler_done = 1;
  if (ws->state == ST_OPEN) {
    put_close(ws, 1000, "", 0);
    ws->state = ST_CLOSING;
    ws->close_deadline = uv_now(ty_loop()) + WS_CLOSE_TIMEOUT_MS;
    flush(ws);
    arm(ws);
  } else if (ws->state == ST_CLOSED) {
    maybe_release(ws);
  }
}

void ty_ws_going_away(ty_conn *c) {
  ty_ws *ws = c->h.stream.data;
  if (!ws || ws->state != ST_OPEN)
    return;
  put_close(ws, 1001, "server closing", 14);
  ws->state = ST_CLOSING;
  ws->close_deadline = uv_now(ty_loop()) + WS_CLOSE_TIMEOUT_MS;
  flush(ws);
  arm(ws);
}

void ty_ws_conn_gone(ty_conn *c) {
  ty_ws *ws = c->h.stream.data;
  if (!ws)
    return;
  c->h.stream.data = NULL;
  ws->conn = NULL;
  ws->stream = NULL;
  set_closed(ws, 1006, "connection closed", 17);
  close_timer(ws);
  ty_host_untrack(&ws->closer);
  wake_all(ws);
  maybe_free(ws);
}

/* ---------------------------------------------------------------------- */
/* Lua: the ws object                                                     */

static ty_ws *check_ws(lua_State *L) {
  ws_box *b = luaL_checkudata(L, 1, WS_MT);
  if (!b->ws)
    luaL_error(L, "websocket is gone");
  return b->ws;
}

static int push_closed(lua_State *L, ty_ws *ws) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  lua_pushinteger(L, ws->code);
  lua_pushstring(L, ws->reason);
  return 4;
}

static int receive_k(lua_State *L, int status, lua_KContext ctx);

/* ws:receive() -> data, "text"|"binary" | nil, "closed", code, reason */
static int ws_receive(lua_State *L) {
  ty_ws *ws = check_ws(L);
  lua_settop(L, 1);
  ws_msg *m = ws->head;
  if (m) {
    ws->head = m->next;
    if (!ws->head)
      ws->tail = NULL;
    ws->queued -= m->len + 1;
    lua_pushlstring(L, m->data, m->len);
    if (m->binary)
      lua_pushliteral(L, "binary");
    else
      lua_pushliteral(L, "text");
    free(m);
    if (ws->read_paused && ws->queued <= WS_QUEUE_HIGH / 2)
      start_reading(ws);
    return 2;
  }
  if (ws->state == ST_CLOSED)
    return push_closed(L, ws);
  return park_on(L, &ws->recv, "receive", receive_k);
}

static int receive_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return ws_receive(L);
}

/* Frames a message, compressed when the extension is on and it is not
 * below the threshold. Returns 0 or -1 (no memory). */
static int put_message(ty_ws *ws, int op, const char *p, size_t len) {
  if (!ws->pmd || !ty_wsd_wants(ws->pmd, len))
    return put_frame(ws, op, p, len);
  if (ty_wsd_compress(ws->pmd, p, len, &ws->zbuf) != TY_WSD_OK)
    return -1;
  int rc = put_frame(ws, op | RSV1, ws->zbuf.p, ws->zbuf.len);
  if (ws->zbuf.cap > WS_KEEP_BUF)
    ty_buf_free(&ws->zbuf);
  return rc;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  ty_ws *ws = check_ws(L);
  if (ws->state == ST_CLOSED)
    return push_closed(L, ws);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:send(data [, "text"|"binary"]) -> true | nil, "closed", code, reason.
 * Waits while more than the high-water mark is unsent. */
static int ws_send(lua_State *L) {
  ty_ws *ws = check_ws(L);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  static const char *const kinds[] = {"text", "binary", NULL};
  int binary = luaL_checkoption(L, 3, "text", kinds);
  if (ws->state != ST_OPEN)
    return push_closed(L, ws);
  if (!binary && !utf8_valid((const unsigned char *)p, len))
    return luaL_argerror(L, 2,
                         "text is not valid UTF-8 (send it as \"binary\")");
  if (put_message(ws, binary ? OP_BINARY : OP_TEXT, p, len) != 0)
    return luaL_error(L, "out of memory");
  flush(ws);
  if (ws->state == ST_CLOSED)
    return push_closed(L, ws);
  if (ws->out.len + ws->wbuf.len <= TY_WRITE_HIGH_WATER ||
      !ty_task_current(L)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  return park_on(L, &ws->drain, "send", send_k);
}

static int ping_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  ty_ws *ws = check_ws(L);
  if (ws->state == ST_CLOSED)
    return push_closed(L, ws);
  if (ws->pong_timed_out) {
    ws->pong_timed_out = 0;
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  lua_pushnumber(L, (double)(uv_hrtime() - ws->ping_sent_ns) / 1e9);
  return 1;
}

/* ws:ping([data]) -> seconds until the pong | nil, "closed", code, reason */
static int ws_ping(lua_State *L) {
  ty_ws *ws = check_ws(L);
  size_t len = 0;
  const char *p = luaL_optlstring(L, 2, "", &len);
  luaL_argcheck(L, len <= 125, 2, "ping data over 125 bytes");
  lua_Number timeout = luaL_optnumber(L, 3, WS_PONG_TIMEOUT_MS / 1000.0);
  luaL_argcheck(L, timeout > 0, 3, "timeout must be positive");
  if (ws->state != ST_OPEN)
    return push_closed(L, ws);
  if (ws->pong.task)
    return luaL_error(L, "another task is already in ws:ping()");
  ws->ping_sent_ns = uv_hrtime();
  ws->pong_timed_out = 0;
  ws->pong_deadline = uv_now(ty_loop()) + (uint64_t)(timeout * 1000);
  put_frame(ws, OP_PING, p, len);
  flush(ws);
  if (ws->state != ST_OPEN)
    return push_closed(L, ws);
  lua_settop(L, 1);
  arm(ws); /* with the pong deadline */
  return park_on(L, &ws->pong, "ping", ping_k);
}

static int close_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:close([code [, reason]]) -> true, after the peer's close frame (or
 * the close timeout). */
static int ws_close(lua_State *L) {
  ty_ws *ws = check_ws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t len = 0;
  const char *reason = luaL_optlstring(L, 3, "", &len);
  luaL_argcheck(L, valid_code((int)code) && code != 1005, 2,
                "invalid close code");
  luaL_argcheck(L, len <= 123, 3, "reason over 123 bytes");
  luaL_argcheck(L, utf8_valid((const unsigned char *)reason, len), 3,
                "reason is not valid UTF-8");
  if (ws->state == ST_CONNECTING) {
    abort_ws(ws, 1006, "closed");
  } else if (ws->state == ST_OPEN) {
    put_close(ws, (int)code, reason, len);
    ws->state = ST_CLOSING;
    ws->code = (int)code;
    ws->close_deadline = uv_now(ty_loop()) + WS_CLOSE_TIMEOUT_MS;
    flush(ws);
    arm(ws);
  }
  if (ws->state == ST_CLOSED || !ty_task_current(L)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  return park_on(L, &ws->closed, "close", close_k);
}

static int ws_index(lua_State *L) {
  ty_ws *ws = check_ws(L);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "state") == 0) {
    static const char *const names[] = {"connecting", "open", "closing",
                                        "closed"};
    lua_pushstring(L, names[ws->state]);
    return 1;
  }
  if (strcmp(k, "buffered") == 0) {
    lua_pushinteger(L, (lua_Integer)(ws->out.len + ws->wbuf.len));
    return 1;
  }
  luaL_getmetatable(L, WS_MT);
  lua_getfield(L, -1, "methods");
  if (lua_getfield(L, -1, k) != LUA_TNIL)
    return 1;
  lua_getiuservalue(L, 1, 1);
  lua_getfield(L, -1, k);
  return 1;
}

static int ws_newindex(lua_State *L) {
  check_ws(L);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

static int ws_gc(lua_State *L) {
  ws_box *b = luaL_checkudata(L, 1, WS_MT);
  ty_ws *ws = b->ws;
  if (!ws)
    return 0;
  b->ws = NULL;
  ws->boxed = 0;
  /* A client nobody can reach any more: drop its connection. A server
   * websocket closes when its handler ends. */
  if (ws->tcp && ws->state != ST_CLOSED && !ty_host_get()->stopping)
    abort_ws(ws, 1006, "collected");
  if (!ws->stream)
    close_timer(ws);
  maybe_free(ws);
  return 0;
}

static int ws_tostring(lua_State *L) {
  ws_box *b = luaL_checkudata(L, 1, WS_MT);
  static const char *const names[] = {"connecting", "open", "closing",
                                      "closed"};
  lua_pushfstring(L, "websocket (%s)", b->ws ? names[b->ws->state] : "gone");
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Lua: server accept and reject                                          */

static void opt_limits(lua_State *L, int idx, ty_ws *ws) {
  if (!lua_istable(L, idx))
    return;
  lua_getfield(L, idx, "max_message");
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v <= 0)
      luaL_error(L, "bad option 'max_message' (positive number expected)");
    ws->max_message = (size_t)v;
  }
  lua_getfield(L, idx, "ping_interval");
  if (!lua_isnil(L, -1))
    ws->ping_ms = (uint64_t)(luaL_checknumber(L, -1) * 1000);
  lua_getfield(L, idx, "idle_timeout");
  if (!lua_isnil(L, -1))
    ws->idle_ms = (uint64_t)(luaL_checknumber(L, -1) * 1000);
  lua_pop(L, 3);
}

/* The integer field k of the table at idx, within lo..hi. [-0, +0, v] */
static int int_field(lua_State *L, int idx, const char *k, int lo, int hi) {
  lua_getfield(L, idx, k);
  lua_Integer v = luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (v < lo || v > hi)
    luaL_error(L, "bad permessage-deflate parameter '%s'", k);
  return (int)v;
}

/* Turns on permessage-deflate with the parameters the handshake agreed
 * on (lua/tycho/ws.lua negotiates), from the table at idx, if any. */
static void opt_deflate(lua_State *L, int idx, ty_ws *ws) {
  if (lua_isnoneornil(L, idx))
    return;
  luaL_checktype(L, idx, LUA_TTABLE);
  ty_wsd_params p;
  p.level = int_field(L, idx, "level", 0, 9);
  p.threshold = (size_t)int_field(L, idx, "threshold", 0, INT32_MAX);
  p.our_bits = int_field(L, idx, "our_bits", 8, 15);
  p.peer_bits = int_field(L, idx, "peer_bits", 8, 15);
  lua_getfield(L, idx, "our_reset");
  p.our_reset = lua_toboolean(L, -1);
  lua_getfield(L, idx, "peer_reset");
  p.peer_reset = lua_toboolean(L, -1);
  lua_pop(L, 2);
  ty_wsd_free(ws->pmd);
  ws->pmd = ty_wsd_new(&p);
  if (!ws->pmd)
    luaL_error(L, "out of memory");
}

/* accept(req, key, protocol|nil, opts, deflate|nil) -> ws: writes the 101
 * response and takes the connection over. The handshake was checked by
 * the caller; deflate holds the permessage-deflate parameters agreed on
 * and `response`, our Sec-WebSocket-Extensions value. */
static int l_accept(lua_State *L) {
  ty_req *r = ty_req_check(L, 1);
  size_t klen;
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *proto = luaL_optstring(L, 3, NULL);
  ty_conn *c = r->conn;
  if (r->res_state != RES_NONE || c->upgraded)
    return luaL_error(L, "response already started: cannot upgrade");
  if (c->closing) {
    lua_pushnil(L);
    lua_pushliteral(L, "connection closed");
    return 2;
  }
  const char *ext = NULL;
  if (lua_istable(L, 5)) {
    lua_getfield(L, 5, "response");
    ext = luaL_checkstring(L, -1); /* stays on the stack, below the ws */
  }
  ty_ws *ws = ws_new(L);
  opt_limits(L, 4, ws);
  opt_deflate(L, 5, ws);
  char accept[32];
  lua_pushlstring(L, key, klen);
  lua_pushliteral(L, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  lua_concat(L, 2);
  size_t alen;
  const char *all = lua_tolstring(L, -1, &alen);
  unsigned char digest[20];
  sha1(all, alen, digest);
  lua_pop(L, 1);
  base64(digest, 20, accept);
  lua_pushfstring(
      L,
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s%s%s\r\n",
      accept, proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
      proto ? "\r\n" : "", ext ? "Sec-WebSocket-Extensions: " : "",
      ext ? ext : "", ext ? "\r\n" : "");
  size_t n;
  const char *head = lua_tolstring(L, -1, &n);
  if (ty_buf_add(&ws->out, head, n) != 0)
    return luaL_error(L, "out of memory");
  lua_pop(L, 1); /* the ws is on top again */
  r->res_state = RES_DONE;
  r->status = 101;
  ws->conn = c;
  ws->stream = &c->h.stream;
  c->h.stream.data = ws;
  c->upgraded = 1;
  c->deadline = 0;
  open_ws(ws);
  if (!c->in_read)
    ty_ws_takeover(c); /* else at the end of conn's read */
  return 1;
}

/* reject(req, status, message): answers a bad handshake and closes. */
static int l_reject(lua_State *L) {
  ty_req *r = ty_req_check(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  const char *msg = luaL_checkstring(L, 3);
  ty_conn *c = r->conn;
  if (r->res_state != RES_NONE)
    return luaL_error(L, "response already started");
  char buf[512], date[64];
  ty_http_date(date);
  int n = snprintf(
      buf, sizeof buf,
      "HTTP/1.1 %d %s\r\n%s%sContent-Type: text/plain; "
      "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
      status, ty_http_reason(status), date,
      status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                    : "",
      strlen(msg) + 1, msg);
  r->res_state = RES_DONE;
  r->status = status;
  r->res_close = 1;
  ty_buf_add(&c->out, buf, (size_t)n);
  c->close_after = 1;
  if (!c->in_read)
    ty_conn_flush(c);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Lua: client                                                            */

static void on_connect(uv_connect_t *req, int status) {
  ty_ws *ws = req->data;
  if (status < 0 || ws->state != ST_CONNECTING) {
    if (ws->state == ST_CONNECTING) {
      ws->hs_err = status;
      abort_ws(ws, 1006, "connect failed");
    }
    return;
  }
  flush(ws); /* the request head waits in ws->out */
  uv_read_start(ws->stream, on_alloc, on_read);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  ws_box *b = luaL_checkudata(L, 1, WS_MT);
  ty_ws *ws = b->ws;
  if (ws->hs_err || ws->state == ST_CLOSED) {
    int err = ws->hs_err ? ws->hs_err : UV_ECONNRESET;
    if (ws->state != ST_CLOSED)
      abort_ws(ws, 1006, "handshake failed");
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    return 3;
  }
  const char *end = memmem(ws->in.p, ws->in.len, "\r\n\r\n", 4);
  size_t hl = (size_t)(end - ws->in.p) + 4;
  lua_pushvalue(L, 1);
  lua_pushlstring(L, ws->in.p, hl);
  memmove(ws->in.p, ws->in.p + hl, ws->in.len - hl);
  ws->in.len -= hl;
  return 2;
}

/* connect(ip, port, request_head, timeout_s, opts) -> ws, response_head |
 * nil, message, code. The caller checks the head, then ws:_open(). */
static int l_connect(lua_State *L) {
  const char *ip = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  size_t hlen;
  const char *head = luaL_checklstring(L, 3, &hlen);
  double timeout = luaL_checknumber(L, 4);
  struct sockaddr_storage addr;
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&addr) != 0)
    return luaL_argerror(L, 1, "not an IP address");
  uint64_t tok = ty_task_prepare(L);
  lua_settop(L, 5);
  ty_ws *ws = ws_new(L);
  lua_replace(L, 1);
  opt_limits(L, 5, ws);
  ws->client = 1;
  ws->state = ST_CONNECTING;
  ws->tcp = malloc(sizeof *ws->tcp);
  if (!ws->tcp)
    return luaL_error(L, "out of memory");
  uv_tcp_init(ty_loop(), ws->tcp);
  ws->tcp->data = ws;
  ws->stream = (uv_stream_t *)ws->tcp;
  uv_tcp_nodelay(ws->tcp, 1);
  ty_buf_add(&ws->out, head, hlen);
  ws->creq.data = ws;
  int err =
      uv_tcp_connect(&ws->creq, ws->tcp, (struct sockaddr *)&addr, on_connect);
  if (err) {
    abort_ws(ws, 1006, "connect failed");
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
    lua_pushstring(L, uv_err_name(err));
    return 3;
  }
  uv_timer_start(&ws->timer, on_timer, (uint64_t)(timeout * 1000), 0);
  ws->hs.tok = tok;
  ws->hs.task = ty_task_current(L);
  lua_settop(L, 1);
  return ty_task_park_k(L, cancel_wait, &ws->hs, connect_k, 0);
}

/* ws:_open([deflate]): the handshake checked out (with the
 * permessage-deflate parameters agreed on, if any); frames flow. */
static int ws_open_client(lua_State *L) {
  ty_ws *ws = check_ws(L);
  if (ws->state != ST_CONNECTING)
    return 0;
  opt_deflate(L, 2, ws);
  uv_timer_stop(&ws->timer);
  open_ws(ws);
  start_reading(ws);
  if (ws->in.len)
    process(ws, (unsigned char *)ws->in.p, ws->in.len, 1);
  return 0;
}

/* ws:_abort(): drop the connection without a handshake. */
static int ws_abort(lua_State *L) {
  ty_ws *ws = check_ws(L);
  if (ws->state != ST_CLOSED)
    abort_ws(ws, 1006, "aborted");
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Lua: helpers and module                                                */

/* accept_key(key) -> base64(sha1(key .. GUID)) */
static int l_accept_key(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_pushliteral(L, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  lua_concat(L, 2);
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  unsigned char d[20];
  char out[32];
  sha1(s, n, d);
  lua_pushlstring(L, out, base64(d, 20, out));
  return 1;
}

static int l_sha1(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char d[20];
  sha1(s, n, d);
  lua_pushlstring(L, (const char *)d, 20);
  return 1;
}

static int l_base64(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4 + 1);
  luaL_pushresultsize(&b, base64((const unsigned char *)s, n, out));
  return 1;
}

static int l_utf8_valid(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, utf8_valid((const unsigned char *)s, n));
  return 1;
}

int ty_ws_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"receive", ws_receive},
                                     {"send", ws_send},
                                     {"ping", ws_ping},
                                     {"close", ws_close},
                                     {"_open", ws_open_client},
                                     {"_abort", ws_abort},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"accept", l_accept},
                                   {"reject", l_reject},
                                   {"connect", l_connect},
                                   {"accept_key", l_accept_key},
                                   {"sha1", l_sha1},
                                   {"base64", l_base64},
                                   {"utf8_valid", l_utf8_valid},
                                   {NULL, NULL}};
  luaL_newmetatable(L, WS_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "methods");
  lua_pushcfunction(L, ws_index);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ws_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, ws_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ws_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  return 1;
}
