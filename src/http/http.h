/* http.h: what the HTTP server's files share: the server, the connection,
 * the in-flight request and the growable byte buffer they are built from.
 * server.c owns listening and accepting, conn.c one connection's reads,
 * parsing, dispatch and writes, message.c the Lua req/res objects and
 * response framing.
 */
#ifndef TY_HTTP_H
#define TY_HTTP_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/host.h"
#include "core/task.h"
#include "llhttp.h"

typedef struct {
  char *p;
  size_t len, cap;
} ty_buf;

int ty_buf_reserve(ty_buf *b, size_t extra);
int ty_buf_add(ty_buf *b, const void *p, size_t n);
void ty_buf_free(ty_buf *b);

typedef struct {
  size_t max_header_bytes, max_headers, max_body_bytes, max_connections;
  uint64_t header_timeout_ms, keepalive_timeout_ms;
  uint64_t body_timeout_ms; /* longest wait for more of a request body */
  uint64_t cpu_limit_ms;    /* a handler's running time per request; 0 off */
} ty_http_limits;

typedef struct ty_server ty_server;
typedef struct ty_conn ty_conn;
typedef struct ty_req ty_req;

typedef struct {
  uint32_t name, name_len, value, value_len; /* offsets into ty_req.head */
} ty_span;

/* res:compress(): the server's choice, never, or whenever the client
 * accepts gzip. */
enum { TY_GZ_SERVER, TY_GZ_OFF, TY_GZ_ON };

typedef struct ty_gzip_conf ty_gzip_conf; /* compress.c */

/* Response progress. */
enum { RES_NONE, RES_STREAMING, RES_DONE };

struct ty_req {
  uint64_t id; /* unique; Lua boxes compare it to detect stale use */
  ty_conn *conn;
  ty_buf head; /* url, then header names and values, back to back */
  ty_span *hdrs;
  size_t nhdrs, hdrs_cap;
  uint32_t url_len;
  size_t head_bytes;
  int method; /* llhttp_method_t */
  int http_minor;
  unsigned keep_alive : 1, headers_done : 1, body_done : 1, dispatched : 1,
      expect_continue : 1, in_value : 1, wait_all : 1, head_only : 1,
      value_cut : 1; /* the last value piece ended at the end of a read */
  ty_buf body;
  size_t body_read; /* how much of body a chunk reader has consumed */
  ty_task *task;
  uint64_t body_tok;  /* task parked for body bytes, 0 when none */
  uint64_t drain_tok; /* task parked for write back-pressure */
  lua_Integer generation;
  /* response */
  int status;
  int res_state;
  unsigned chunked : 1, has_ctype : 1, has_clen : 1, res_close : 1;
  ty_buf rhead; /* header lines set by the handler */
  uint64_t start_ns;
  size_t res_bytes; /* response body bytes, for the access log */
  int file_fd;      /* res:send_file in progress, else -1 */
  int64_t file_off, file_left;
  uint64_t file_tok; /* the handler parked until the file is sent */
  uint64_t cpu_used_ns, cpu_last_ns, cpu_loop_ms; /* see message.c cpu_hook */
  unsigned cpu_stopped : 1;
  unsigned gz_mode : 2; /* TY_GZ_*: res:compress() */
  void *gz;             /* z_stream of a gzipped streamed body, or NULL */
  int ref_req, ref_res; /* registry refs of the Lua objects, while live */
  ty_req *next_free;
};

struct ty_conn {
  union {           /* first: the handle's address is the conn's */
    uv_tcp_t tcp;   /* a client connection */
    uv_pipe_t pipe; /* tycho.test.request's in-process socket pair */
    uv_stream_t stream;
  } h;
  llhttp_t parser;
  ty_server *srv;
  ty_conn *prev, *next;
  uint64_t deadline; /* loop ms when the current timeout fires; 0 none */
  ty_buf in;         /* received bytes not parsed yet */
  ty_buf out;        /* response bytes not handed to the kernel yet */
  ty_buf wbuf;       /* bytes of the write in flight */
  uv_write_t *wreq;  /* only while a write waits for the kernel: idle
                        connections stay small */
  ty_req *req;
  unsigned writing : 1, closing : 1, in_read : 1, shut : 1, close_after : 1,
      paused_read : 1, upgraded : 1;
};

struct ty_server {
  uv_tcp_t tcp;
  ty_closer closer;
  uv_timer_t sweep;
  ty_http_limits lim;
  ty_conn conns; /* list head */
  size_t nconns;
  int handler_ref;
  int self_ref;          /* anchors the Lua object while the server is open */
  int close_waiters_ref; /* table of {co, tok} waiting for drain */
  lua_Integer generation;
  int port;
  unsigned closing : 1, closed : 1, sweep_late : 1;
  int handles_open;   /* listener + sweep timer not yet closed */
  int log_ref;        /* access log hook (server:set_log), LUA_NOREF when off */
  ty_gzip_conf *gzip; /* serve{compression=...}, NULL when off */
  char host[64];
};

/* conn.c */
void ty_conn_accept(ty_server *s);
int ty_conn_open_pipe(ty_server *s, uv_file fd);
void ty_conn_close(ty_conn *c);
void ty_conn_flush(ty_conn *c);
void ty_conn_request_done(ty_conn *c);
void ty_conn_resume_reading(ty_conn *c);
void ty_conn_body_taken(ty_conn *c); /* req:chunks() took bytes */
const char *ty_conn_remote(ty_conn *c, char *buf, size_t len, int *port);
extern const llhttp_settings_t ty_http_settings;

/* message.c */
void ty_req_dispatch(ty_req *r);
ty_req *ty_req_new(ty_conn *c);
void ty_req_free(ty_req *r);
void ty_req_body_event(ty_req *r);
void ty_req_drained(ty_req *r);
void ty_req_pump_file(ty_req *r);
int ty_http_message_open(lua_State *L);
void ty_cookies_push(lua_State *L, ty_req *r); /* req.cookies */
void ty_url_decode(lua_State *L, const char *s, size_t n, int plus);
void ty_res_error(ty_conn *c, int status, int close_after);
void ty_http_date(char *out); /* "Date: ...\r\n", 37 bytes + NUL */
const char *ty_http_reason(int status);

/* compress.c: gzip for responses (see the file's header) */
ty_gzip_conf *ty_gzip_conf_read(lua_State *L, int opts); /* NULL: off */
void ty_gzip_conf_free(ty_gzip_conf *g);
/* A whole body: the bytes to send (compressed, or body) and their length */
const char *ty_gzip_whole(ty_req *r, const char *body, size_t *len);
void ty_gzip_stream_start(ty_req *r); /* may set r->gz */
const char *ty_gzip_chunk(ty_req *r, const char *p, size_t *len);
const char *ty_gzip_finish(ty_req *r, size_t *len); /* frees r->gz */
void ty_gzip_end(ty_req *r);

/* ops.c */
extern uint64_t ty_http_open_conns; /* all servers, for metrics */
void ty_http_finished(ty_conn *c, ty_req *r, int status); /* stats, log */
int ty_http_reuseport_socket(const char *host, int port, int *fd);

/* server.c */
void ty_server_conn_gone(ty_server *s);

/* websocket.c: a connection upgraded by req:websocket{} */
void ty_ws_takeover(ty_conn *c);     /* end of the read that upgraded */
void ty_ws_handler_done(ty_conn *c); /* its handler task ended */
void ty_ws_going_away(ty_conn *c);   /* server:close(): close with 1001 */
void ty_ws_conn_gone(ty_conn *c);    /* the handle closed: before free */
ty_req *ty_req_check(lua_State *L, int idx); /* message.c: live req box */

#endif
