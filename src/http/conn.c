/* conn.c: one HTTP/1.1 connection. Owns reading into a shared buffer,
 * feeding llhttp, deciding when a request is dispatched to its handler,
 * keeping pipelined requests in order (one request in flight at a time; the
 * rest wait as unparsed bytes), batching responses into one write per read,
 * back-pressure, timeouts and the close path.
 *
 * Lifetime: a conn is freed only in its uv_close callback. While a handler
 * task runs for it, closing cancels the task first and the handle is closed
 * when the task's done hook reports back (ty_conn_request_done).
 */
#include "core/limits.h"
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char read_buf[TY_READ_BUFFER];

/* ---------------------------------------------------------------------- */
/* Byte buffers                                                           */

int ty_buf_reserve(ty_buf *b, size_t extra) {
  if (b->len + extra <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 512;
  while (cap < b->len + extra)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p)
    return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int ty_buf_add(ty_buf *b, const void *p, size_t n) {
  if (n == 0)
    return 0;
  if (ty_buf_reserve(b, n) != 0)
    return -1;
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

void ty_buf_free(ty_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------- */
/* Parser callbacks: collect the request; pause at the two events the     */
/* connection acts on (headers complete, message complete).               */

#define CONN(p) ((ty_conn *)(p)->data)

/* Stops the parser with an error that answers with `status`. */
static int fail(llhttp_t *p, int status, const char *why) {
  llhttp_set_error_reason(p, why);
  CONN(p)->req->status = status;
  return HPE_USER;
}

static int count_head(llhttp_t *p, size_t n) {
  ty_req *r = CONN(p)->req;
  r->head_bytes += n;
  if (r->head_bytes > CONN(p)->srv->lim.max_header_bytes)
    return fail(p, 431, "request header fields too large");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  ty_conn *c = CONN(p);
  c->req = ty_req_new(c);
  if (!c->req)
    return HPE_USER;
  c->deadline = uv_now(c->h.stream.loop) + c->srv->lim.header_timeout_ms;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  ty_req *r = CONN(p)->req;
  if (count_head(p, n))
    return HPE_USER;
  if (ty_buf_add(&r->head, at, n))
    return HPE_USER;
  r->url_len += (uint32_t)n;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  ty_req *r = CONN(p)->req;
  if (count_head(p, n))
    return HPE_USER;
  if (r->in_value || r->nhdrs == 0) { /* else: a name split across reads */
    if (r->nhdrs >= CONN(p)->srv->lim.max_headers)
      return fail(p, 431, "too many header fields");
    if (r->nhdrs == r->hdrs_cap) {
      size_t cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
      ty_span *h = realloc(r->hdrs, cap * sizeof *h);
      if (!h)
        return HPE_USER;
      r->hdrs = h;
      r->hdrs_cap = cap;
    }
    ty_span *s = &r->hdrs[r->nhdrs++];
    s->name = (uint32_t)r->head.len;
    s->name_len = s->value = s->value_len = 0;
    r->in_value = 0;
  }
  if (ty_buf_add(&r->head, at, n))
    return HPE_USER;
  r->hdrs[r->nhdrs - 1].name_len += (uint32_t)n;
  return 0;
}

/* The bytes llhttp_execute is parsing now (see feed). */
static const char *feed_start, *feed_end;

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  ty_req *r = CONN(p)->req;
  if (count_head(p, n))
    return HPE_USER;
  ty_span *s = &r->hdrs[r->nhdrs - 1];
  if (!r->in_value) {
    r->in_value = 1;
    s->value = (uint32_t)r->head.len;
  } else if (at != feed_start || !r->value_cut) {
    /* llhttp 8 joins obs-fold lines ("X: a\r\n b") into one value. A
     * second piece of a value that does not start where a read began is
     * such a fold: refuse it, as RFC 9112 5.2 allows, since a proxy in
     * front may read the folded line as a header of its own. */
    return fail(p, 400, "obsolete line folding");
  }
  r->value_cut = at + n == feed_end;
  if (ty_buf_add(&r->head, at, n))
    return HPE_USER;
  s->value_len += (uint32_t)n;
  return 0;
}

static int header_is(ty_req *r, ty_span *s, const char *name, size_t len) {
  return s->name_len == len && strncasecmp(r->head.p + s->name, name, len) == 0;
}

static void scan_expect(ty_req *r) {
  for (size_t i = 0; i < r->nhdrs; i++) {
    ty_span *s = &r->hdrs[i];
    if (header_is(r, s, "expect", 6) && s->value_len == 12 &&
        strncasecmp(r->head.p + s->value, "100-continue", 12) == 0)
      r->expect_continue = 1;
  }
}

static int on_headers_complete(llhttp_t *p) {
  ty_conn *c = CONN(p);
  ty_req *r = c->req;
  r->headers_done = 1;
  r->method = p->method;
  r->http_minor = p->http_minor;
  r->keep_alive = llhttp_should_keep_alive(p) ? 1 : 0;
  r->head_only = p->method == HTTP_HEAD;
  if (p->http_major != 1)
    return fail(p, 505, "HTTP version not supported");
  /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing. */
  if (p->http_minor == 0 && (p->flags & F_TRANSFER_ENCODING))
    return fail(p, 400, "transfer-encoding in an HTTP/1.0 request");
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > c->srv->lim.max_body_bytes)
    return fail(p, 413, "content too large");
  int has_body = (p->flags & F_CHUNKED) ||
                 ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  if (!has_body)
    return 0; /* message complete follows at once */
  scan_expect(r);
  return HPE_PAUSED; /* the connection decides how to take the body */
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  ty_conn *c = CONN(p);
  ty_req *r = c->req;
  if (r->res_state == RES_DONE && r->task == NULL)
    return 0; /* discard */
  if (r->body_read + r->body.len + n > c->srv->lim.max_body_bytes)
    return fail(p, 413, "content too large");
  if (ty_buf_add(&r->body, at, n))
    return HPE_USER;
  return 0;
}

/* A chunk announced larger than the body limit is refused before its
 * bytes arrive (and before the handler starts, when the head came with it). */
static int on_chunk_header(llhttp_t *p) {
  ty_conn *c = CONN(p);
  ty_req *r = c->req;
  uint64_t room = c->srv->lim.max_body_bytes - (r->body_read + r->body.len);
  if (r->body_read + r->body.len > c->srv->lim.max_body_bytes ||
      p->content_length > room)
    return fail(p, 413, "content too large");
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  CONN(p)->req->body_done = 1;
  return HPE_PAUSED;
}

const llhttp_settings_t ty_http_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------------- */
/* Feeding the parser                                                     */

static int busy(ty_conn *c) {
  ty_req *r = c->req;
  return r && r->dispatched && r->body_done;
}

/* Responses wait unsent past the high-water mark: a client that does not
 * read gets no more requests parsed (and is not read from) until it does,
 * so pipelined requests cannot pile up responses in memory. */
static int backed_up(ty_conn *c) {
  return c->out.len + c->wbuf.len > TY_WRITE_HIGH_WATER;
}

/* A handler streaming the body (req:chunks) has not taken this much of it
 * yet: reading stops until it does, so a large upload waits in the kernel
 * instead of in memory. req:body() wants it all and is never held back. */
static int body_full(ty_conn *c) {
  ty_req *r = c->req;
  return r && r->task && !r->body_done && !r->wait_all &&
         r->body.len > TY_BODY_HIGH_WATER;
}

static void parse_error(ty_conn *c, llhttp_errno_t err) {
  int status = 400;
  if (c->req && c->req->status >= 400)
    status = c->req->status;
  ty_req *r = c->req;
  if (r && r->dispatched) {
    /* The handler already runs: it loses its body; stop it. */
    if (r->res_state != RES_NONE)
      status = 0;
    if (r->task)
      ty_task_cancel(r->task);
  }
  if (status)
    ty_res_error(c, status, 1);
  c->close_after = 1;
}

static void send_continue(ty_conn *c) {
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  ty_buf_add(&c->out, msg, sizeof msg - 1);
}

/* The parser paused: at headers complete or message complete. */
static void on_pause(ty_conn *c) {
  ty_req *r = c->req;
  c->deadline = 0;     /* the head is in: no header timeout from here */
  if (!r->body_done) { /* headers complete, a body follows */
    /* A body that stops coming must not hold the connection forever. */
    c->deadline = uv_now(c->h.stream.loop) + c->srv->lim.body_timeout_ms;
    if (r->expect_continue)
      send_continue(c);
    return;
  }
  if (!r->dispatched) {
    ty_req_dispatch(r);
  } else {
    ty_req_body_event(r);
  }
  if (c->req == r && r->task == NULL && r->dispatched)
    ty_conn_request_done(c);
}

/* Feeds bytes to the parser until they are used up, a request is in
 * flight, or the connection is to close. Returns how many were used. */
static size_t feed(ty_conn *c, const char *data, size_t len) {
  size_t used = 0;
  while (used < len && !c->closing && !c->close_after && !busy(c) &&
         !c->upgraded && !backed_up(c)) {
    const char *at = data + used;
    feed_start = at;
    feed_end = data + len;
    llhttp_errno_t err = llhttp_execute(&c->parser, at, len - used);
    if (err == HPE_OK) {
      used = len;
      break;
    }
    used += (size_t)(llhttp_get_error_pos(&c->parser) - at);
    if (err == HPE_PAUSED) {
      llhttp_resume(&c->parser);
      on_pause(c);
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      c->close_after = 1; /* answered without req:websocket{}: no more HTTP */
      break;
    }
    parse_error(c, err);
    break;
  }
  /* Out of bytes mid-body: let the handler start and await the rest. */
  ty_req *r = c->req;
  if (r && !c->closing && !c->close_after) {
    if (r->headers_done && !r->dispatched)
      ty_req_dispatch(r);
    else if (r->dispatched && r->body.len)
      ty_req_body_event(r);
  }
  return used;
}

/* Parses what waits in c->in, keeping the unparsed tail there. */
static void feed_buffered(ty_conn *c) {
  if (c->in.len == 0)
    return;
  size_t used = feed(c, c->in.p, c->in.len);
  if (used >= c->in.len) {
    c->in.len = 0;
  } else if (used > 0) {
    memmove(c->in.p, c->in.p + used, c->in.len - used);
    c->in.len -= used;
  }
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                */

static void after_io(ty_conn *c);
static void on_close(uv_handle_t *h);

static void resume_input(ty_conn *c);

static void on_write(uv_write_t *w, int status) {
  ty_conn *c = (ty_conn *)w->handle;
  free(w);
  c->wreq = NULL;
  c->writing = 0;
  c->wbuf.len = 0;
  if (c->closing)
    return;
  if (status < 0) {
    ty_conn_close(c);
    return;
  }
  resume_input(c);
  after_io(c);
}

void ty_conn_flush(ty_conn *c) {
  if (c->writing || c->out.len == 0 || c->closing)
    return;
  uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
  int n = uv_try_write(&c->h.stream, &b, 1);
  if (n == (int)c->out.len) {
    c->out.len = 0;
    if (c->req)
      ty_req_drained(c->req);
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    ty_conn_close(c);
    return;
  }
  if (n < 0)
    n = 0;
  ty_buf t = c->wbuf; /* swap: the unsent bytes become the write's */
  c->wbuf = c->out;
  c->out = t;
  c->out.len = 0;
  if (n > 0) {
    memmove(c->wbuf.p, c->wbuf.p + n, c->wbuf.len - n);
    c->wbuf.len -= n;
  }
  b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
  c->wreq = malloc(sizeof *c->wreq);
  if (!c->wreq || uv_write(c->wreq, &c->h.stream, &b, 1, on_write) != 0) {
    free(c->wreq);
    c->wreq = NULL;
    ty_conn_close(c);
    return;
  }
  c->writing = 1;
}

static void on_shutdown(uv_shutdown_t *s, int status) {
  ty_conn *c = (ty_conn *)s->handle;
  free(s);
  if (c->closing)
    return;
  if (status < 0) {
    ty_conn_close(c);
    return;
  }
  /* Read and drop what the peer still sends until it closes, so our
   * last response is not lost to a reset. */
  c->deadline = uv_now(c->h.stream.loop) + TY_LINGER_TIMEOUT_MS;
}

static void half_close(ty_conn *c) {
  if (c->shut || c->closing)
    return;
  c->shut = 1;
  uv_shutdown_t *s = malloc(sizeof *s);
  if (!s || uv_shutdown(s, &c->h.stream, on_shutdown) != 0) {
    free(s);
    ty_conn_close(c);
    return;
  }
  if (c->paused_read) {
    c->paused_read = 0;
    ty_conn_resume_reading(c);
  }
}

/* Releases buffer memory of an idle connection: idle keep-alive
 * connections should cost little more than their handle. */
static void trim_idle(ty_conn *c) {
  if (c->req || c->writing)
    return;
  if (c->out.len == 0)
    ty_buf_free(&c->out);
  if (c->in.len == 0)
    ty_buf_free(&c->in);
  ty_buf_free(&c->wbuf);
}

static void after_io(ty_conn *c) {
  if (c->closing)
    return;
  ty_conn_flush(c);
  if (c->closing)
    return;
  if (c->paused_read && !backed_up(c)) { /* written at once: go on */
    resume_input(c);
    ty_conn_flush(c);
    if (c->closing)
      return;
  }
  if (c->req && c->req->file_fd >= 0) {
    ty_req_pump_file(c->req);
    if (c->closing)
      return;
  }
  if (c->close_after && !c->writing && c->out.len == 0 &&
      !(c->req && c->req->task)) {
    half_close(c);
    return;
  }
  if (c->req && !c->writing && c->out.len == 0)
    ty_req_drained(c->req);
  trim_idle(c);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ty_conn *c = (ty_conn *)s;
  if (nread < 0) {
    ty_conn_close(c); /* EOF or error: a running handler is cancelled */
    return;
  }
  if (nread == 0 || c->shut || c->closing)
    return;
  c->in_read = 1;
  if (c->in.len == 0) {
    size_t used = feed(c, buf->base, (size_t)nread);
    if (used < (size_t)nread && !c->closing &&
        ty_buf_add(&c->in, buf->base + used, (size_t)nread - used) != 0)
      ty_conn_close(c);
  } else if (ty_buf_add(&c->in, buf->base, (size_t)nread) != 0) {
    ty_conn_close(c);
  } else {
    feed_buffered(c);
  }
  c->in_read = 0;
  if (c->upgraded && !c->closing) {
    ty_ws_takeover(c); /* websocket.c reads from here on */
    return;
  }
  ty_req *r = c->req; /* more of a body came: its timeout starts over */
  if (r && r->headers_done && !r->body_done && !c->closing)
    c->deadline = uv_now(s->loop) + c->srv->lim.body_timeout_ms;
  /* A client that pipelines faster than we answer, or does not read our
   * answers, waits in the kernel. */
  if (!c->closing && (backed_up(c) || c->in.len > c->srv->lim.max_header_bytes +
                                                      TY_READ_BUFFER)) {
    uv_read_stop(s);
    c->paused_read = 1;
  } else if (!c->closing && body_full(c)) {
    uv_read_stop(s);
    c->paused_read = 1;
    c->deadline = 0; /* the handler is slow, not the client */
  }
  after_io(c);
}

/* Reading goes on in the middle of a body: its timeout starts over, as
 * the pause (body_full stops the clock) was ours, not the client's. */
static void restart_body_clock(ty_conn *c) {
  ty_req *r = c->req;
  if (r && r->headers_done && !r->body_done)
    c->deadline = uv_now(c->h.stream.loop) + c->srv->lim.body_timeout_ms;
}

/* Output drained below the high-water mark: go on with what waits. */
static void resume_input(ty_conn *c) {
  if (c->closing || c->in_read || busy(c) || backed_up(c) || c->upgraded)
    return;
  c->in_read = 1;
  feed_buffered(c);
  c->in_read = 0;
  if (c->paused_read && !c->closing && !backed_up(c) && !body_full(c) &&
      c->in.len <= c->srv->lim.max_header_bytes + TY_READ_BUFFER) {
    c->paused_read = 0;
    restart_body_clock(c);
    ty_conn_resume_reading(c);
  }
}

/* A body reader took what was buffered (or now wants all of it): reading
 * stopped by body_full goes on, and the body timeout starts over. */
void ty_conn_body_taken(ty_conn *c) {
  if (!c->paused_read || c->closing || c->upgraded || body_full(c) ||
      backed_up(c) || c->in.len > c->srv->lim.max_header_bytes + TY_READ_BUFFER)
    return;
  restart_body_clock(c);
  c->paused_read = 0; /* no parsing here: a handler is running */
  ty_conn_resume_reading(c);
}

void ty_conn_resume_reading(ty_conn *c) {
  if (!c->closing)
    uv_read_start(&c->h.stream, on_alloc, on_read);
}

/* The handler task ended (or the message completed after it ended). */
void ty_conn_request_done(ty_conn *c) {
  ty_req *r = c->req;
  if (c->closing) {
    if (r && r->task == NULL) {
      ty_req_free(r);
      c->req = NULL;
      uv_close((uv_handle_t *)&c->h, on_close);
    }
    return;
  }
  if (c->upgraded) { /* the websocket's handler ended */
    if (r && r->task)
      return;
    if (r)
      ty_req_free(r);
    c->req = NULL;
    ty_ws_handler_done(c);
    return;
  }
  if (r && !r->task && !r->body_done)
    ty_conn_body_taken(c); /* the rest of the body is read and dropped */
  if (!r || r->task || !r->body_done)
    return;
  int keep = r->keep_alive && !r->res_close && !c->srv->closing;
  ty_req_free(r);
  c->req = NULL;
  if (!keep)
    c->close_after = 1;
  else
    c->deadline = uv_now(c->h.stream.loop) + c->srv->lim.keepalive_timeout_ms;
  if (c->in_read)
    return; /* the read loop goes on with the next request */
  c->in_read = 1;
  feed_buffered(c);
  c->in_read = 0;
  if (c->paused_read && !c->closing && c->in.len == 0 && !backed_up(c)) {
    c->paused_read = 0;
    ty_conn_resume_reading(c);
  }
  after_io(c);
}

/* ---------------------------------------------------------------------- */
/* Accept and close                                                       */

static void on_close(uv_handle_t *h) {
  ty_conn *c = (ty_conn *)h;
  ty_server *s = c->srv;
  if (c->upgraded)
    ty_ws_conn_gone(c);
  c->prev->next = c->next;
  c->next->prev = c->prev;
  s->nconns--;
  ty_http_open_conns--;
  ty_buf_free(&c->in);
  ty_buf_free(&c->out);
  ty_buf_free(&c->wbuf);
  free(c);
  ty_server_conn_gone(s);
}

void ty_conn_close(ty_conn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  c->deadline = 0;
  uv_read_stop(&c->h.stream);
  ty_req *r = c->req;
  if (r && r->task && !ty_host_get()->stopping) {
    ty_task_cancel(r->task); /* its done hook finishes the close */
    if (c->req && c->req->task)
      return;
    if (uv_is_closing((uv_handle_t *)&c->h))
      return;
  }
  if (c->req) {
    ty_req_free(c->req);
    c->req = NULL;
  }
  uv_close((uv_handle_t *)&c->h, on_close);
}

static const char busy_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";

/* Counts a new connection in its server; its handle is initialised. */
static void link_conn(ty_server *s, ty_conn *c) {
  c->srv = s;
  c->next = s->conns.next;
  c->prev = &s->conns;
  s->conns.next->prev = c;
  s->conns.next = c;
  s->nconns++;
  ty_http_open_conns++;
}

/* Closes a connection that never served (its close callback unlinks it). */
static void drop_conn(ty_conn *c) {
  c->closing = 1;
  uv_close((uv_handle_t *)&c->h, on_close);
}

/* Starts parsing and reading, with the header timeout running. */
static void start_conn(ty_conn *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &ty_http_settings);
  c->parser.data = c;
  c->deadline = uv_now(c->h.stream.loop) + c->srv->lim.header_timeout_ms;
  ty_conn_resume_reading(c);
}

void ty_conn_accept(ty_server *s) {
  ty_conn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  uv_tcp_init(s->tcp.loop, &c->h.tcp);
  link_conn(s, c);
  if (uv_accept((uv_stream_t *)&s->tcp, &c->h.stream) != 0) {
    drop_conn(c);
    return;
  }
  if (s->nconns > s->lim.max_connections) {
    uv_buf_t b = uv_buf_init((char *)busy_response, sizeof busy_response - 1);
    uv_try_write(&c->h.stream, &b, 1);
    drop_conn(c);
    return;
  }
  uv_tcp_nodelay(&c->h.tcp, 1);
  start_conn(c);
}

/* A connection made by tycho.test.request: the same code, no network. */
int ty_conn_open_pipe(ty_server *s, uv_file fd) {
  ty_conn *c = calloc(1, sizeof *c);
  if (!c)
    return UV_ENOMEM;
  uv_pipe_init(ty_loop(), &c->h.pipe, 0);
  int err = uv_pipe_open(&c->h.pipe, fd);
  link_conn(s, c);
  if (err) {
    drop_conn(c);
    return err;
  }
  start_conn(c);
  return 0;
}

const char *ty_conn_remote(ty_conn *c, char *buf, size_t len, int *port) {
  struct sockaddr_storage ss;
  int n = sizeof ss;
  buf[0] = '\0';
  *port = 0;
  if (c->h.stream.type != UV_TCP) {
    snprintf(buf, len, "127.0.0.1"); /* in-process test connection */
    return buf;
  }
  if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &n) != 0)
    return buf;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, buf, len);
    *port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, buf, len);
    *port = ntohs(a->sin_port);
  }
  return buf;
}
