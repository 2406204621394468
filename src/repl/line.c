/* line.c: the REPL's line editor, `require "tycho.repl.line"`. Wraps
 * libedit's readline-compatible callback interface and drives it from the
 * libuv loop: a uv_poll_t on the terminal feeds one key at a time to
 * rl_callback_read_char, so timers, servers and tasks keep running while
 * the prompt waits. A task awaits a whole line with read(prompt).
 *
 * libedit's readline layer is a process-wide singleton, so this module is
 * one too: one editor, at most one pending read. It owns the terminal mode
 * while a prompt shows (raw, libedit's) and gives it back (cooked) as soon
 * as a line is complete, so a running line sees a normal terminal and
 * Ctrl-C raises SIGINT for the host's signal takers.
 */
#include "core/host.h"
#include "core/task.h"

#include <editline/readline.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Characters that end a word for completion. Dots and colons are missing
 * on purpose: `tycho.fs.re` and `s:up` reach the completer whole. */
static const char WORD_BREAKS[] = " \t\n\"'`<>=;|&{}()[],+-*/%^~#";

typedef struct {
  ty_closer closer;
  uv_poll_t poll;
  int rl_ready;    /* rl_initialize done */
  int ready;       /* poll initialised and tracked */
  int closing;     /* poll close callback pending */
  int polling;     /* poll started */
  int installed;   /* callback handler installed: the prompt shows */
  int hidden;      /* hide() took the prompt off the screen */
  ty_task *reader; /* the task parked in read(), or NULL */
  uint64_t tok;
  int have_line; /* on_line ran during this rl_callback_read_char */
  char *line;    /* what it got (malloc'd by libedit); NULL means EOF */
  char *prompt;  /* the prompt of the pending read (malloc'd) */
  int complete_ref;
} editor;

static editor ed = {.complete_ref = LUA_NOREF};

/* ---------------------------------------------------------------------- */
/* The prompt: install, remove                                            */

static void on_line(char *line) {
  ed.have_line = 1;
  ed.line = line;
}

static void poll_stop(void) {
  if (ed.polling)
    uv_poll_stop(&ed.poll);
  ed.polling = 0;
}

/* Takes the prompt off. libedit restores the cooked terminal mode; with
 * keep_raw the terminal goes back to libedit's raw mode at once, so that
 * keys typed (or pasted) while the line runs are not echoed by the
 * terminal but wait, unechoed, for the next prompt to show them. Output
 * and Ctrl-C (SIGINT) work the same in both modes. */
static void prompt_remove(int keep_raw) {
  poll_stop();
  ed.hidden = 0;
  if (!ed.installed)
    return;
  ed.installed = 0;
  rl_callback_handler_remove();
  if (keep_raw)
    rl_prep_terminal(0);
  fflush(stdout);
}

static void on_readable(uv_poll_t *p, int status, int events);

/* Shows the prompt of the pending read and starts feeding it keys. */
static int prompt_install(void) {
  rl_callback_handler_install(ed.prompt, on_line);
  rl_point = rl_end = 0; /* a fresh, empty line (see on_readable) */
  ed.installed = 1;
  int rc = uv_poll_start(&ed.poll, UV_READABLE, on_readable);
  if (rc == 0)
    ed.polling = 1;
  return rc;
}

static void clear_prompt_text(void) {
  free(ed.prompt);
  ed.prompt = NULL;
}

/* ---------------------------------------------------------------------- */
/* Waking the reader                                                      */

/* Resumes the parked reader with the values pushed by `push` (which may
 * not raise: it runs on the coroutine's stack). */
static void wake_reader(void (*push)(lua_State *co, void *ud), int n,
                        void *ud) {
  ty_task *t = ed.reader;
  ed.reader = NULL;
  clear_prompt_text();
  if (!t)
    return;
  lua_State *co = ty_task_wakeable(t, ed.tok);
  if (!co)
    return;
  push(co, ud);
  ty_task_resume(t, n);
}

static void push_line(lua_State *co, void *ud) {
  const char *line = ud;
  if (line)
    lua_pushstring(co, line);
  else
    lua_pushnil(co);
}

/* Delivers what on_line stored: called once libedit has returned, so the
 * resumed task never runs inside libedit's own stack frames. */
static void deliver_line(void) {
  char *line = ed.line;
  ed.line = NULL;
  ed.have_line = 0;
  prompt_remove(1);
  /* lua_pushstring may raise only on memory exhaustion; the copy is made
   * before the resume, so free right after. */
  wake_reader(push_line, 1, line);
  free(line);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  (void)p;
  (void)events;
  if (status < 0) { /* the terminal went away: treat it as end of input */
    ed.have_line = 1;
    ed.line = NULL;
  } else {
    /* libedit refreshes rl_end only when the line it returns is not
     * empty: a line emptied by backspace or ^U would keep a stale length. */
    rl_point = rl_end = 0;
    rl_callback_read_char();
  }
  if (ed.have_line)
    deliver_line();
}

/* The reader task was cancelled: take the prompt down and forget it. */
static void on_read_cancel(void *ud) {
  (void)ud;
  ed.reader = NULL;
  clear_prompt_text();
  prompt_remove(0);
  rl_deprep_terminal();
}

/* ---------------------------------------------------------------------- */
/* Completion                                                             */

/* Asks the Lua completer for candidates: it returns them joined by "\n".
 * The result array follows readline's contract: [0] is the text to put
 * in place of the word (the common prefix), then the candidates, NULL. */
static char **build_matches(const char *list, size_t len) {
  size_t n = 1;
  for (size_t i = 0; i < len; i++)
    n += list[i] == '\n';
  char **m = calloc(n + 2, sizeof *m);
  if (!m)
    return NULL;
  size_t k = 1, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && list[i] != '\n')
      continue;
    m[k] = strndup(list + start, i - start);
    if (m[k])
      k++;
    start = i + 1;
  }
  size_t common = k > 1 ? strlen(m[1]) : 0;
  for (size_t j = 2; j < k; j++) {
    size_t c = 0;
    while (c < common && m[j][c] == m[1][c])
      c++;
    common = c;
  }
  m[0] = k > 1 ? strndup(m[1], common) : NULL;
  if (!m[0]) {
    for (size_t j = 1; j < k; j++)
      free(m[j]);
    free(m);
    return NULL;
  }
  return m;
}

static char **on_complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  lua_State *L = ty_host_get()->L;
  if (ed.complete_ref == LUA_NOREF || !L)
    return NULL;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ed.complete_ref);
  lua_pushstring(L, text);
  if (ty_pcall(L, 1, 1) != LUA_OK) {
    ty_report(L, "completion failed");
    lua_settop(L, top);
    return NULL;
  }
  char **m = NULL;
  size_t len = 0;
  const char *list = lua_tolstring(L, -1, &len);
  if (list && len > 0)
    m = build_matches(list, len);
  lua_settop(L, top);
  return m;
}

/* ---------------------------------------------------------------------- */
/* Blocking reads for completers                                          */

/* libedit calls the completer synchronously, from inside
 * rl_callback_read_char: it can neither park a task nor run the loop
 * (uv_run is not reentrant). A completer whose names live elsewhere (the
 * remote process of `tycho attach`) therefore waits for the answer by
 * blocking on the connection's fd, briefly and with a deadline. */

#define READ_WAIT_CHUNK 65536 /* bytes read at most per call */
#define READ_WAIT_MAX 60.0    /* longest wait accepted, in seconds */

/* Pushes nil, "CODE: message", "CODE" for a libuv error code. */
static int push_uv_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

/* Waits until fd is readable or the deadline (uv_hrtime nanoseconds) has
 * passed: 0, or a negative libuv error code (UV_ETIMEDOUT). */
static int wait_readable(int fd, uint64_t deadline) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (;;) {
    uint64_t now = uv_hrtime();
    uint64_t left = deadline > now ? deadline - now : 0;
    int ms = (int)((left + 999999) / 1000000); /* round up: never spin */
    int rc = poll(&p, 1, ms);
    if (rc > 0)
      return 0;
    if (rc == 0 && uv_hrtime() >= deadline)
      return UV_ETIMEDOUT;
    if (rc < 0 && errno != EINTR) /* EINTR: a signal, wait on */
      return uv_translate_sys_error(errno);
  }
}

/* read_wait(fd, timeout) -> data | "" (end of stream) | nil, message, code
 * Waits at most timeout seconds for fd (non-blocking, such as a luv pipe's
 * fileno) to be readable, then reads what is there, up to 64 KiB. Blocks
 * the whole process meanwhile: only for short waits. [-0, +1|3, m] */
static int l_read_wait(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  lua_Number timeout = luaL_checknumber(L, 2);
  luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "not a file descriptor");
  luaL_argcheck(L, timeout >= 0 && timeout <= READ_WAIT_MAX, 2, "out of range");
  uint64_t deadline = uv_hrtime() + (uint64_t)(timeout * 1e9);
  luaL_Buffer b;
  char *buf = luaL_buffinitsize(L, &b, READ_WAIT_CHUNK);
  for (;;) {
    int rc = wait_readable((int)fd, deadline);
    if (rc != 0)
      return push_uv_fail(L, rc);
    ssize_t n = read((int)fd, buf, READ_WAIT_CHUNK);
    if (n >= 0) {
      luaL_pushresultsize(&b, (size_t)n);
      return 1;
    }
    /* A readiness that another reader took first, or a signal: wait on. */
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return push_uv_fail(L, uv_translate_sys_error(errno));
    if (uv_hrtime() >= deadline)
      return push_uv_fail(L, UV_ETIMEDOUT);
  }
}

/* ---------------------------------------------------------------------- */
/* Set-up and teardown                                                    */

static void on_poll_closed(uv_handle_t *h) {
  (void)h;
  ed.closing = 0;
}

static void editor_close(ty_closer *c) {
  (void)c;
  if (!ed.ready)
    return;
  ed.reader = NULL;
  prompt_remove(0);
  rl_deprep_terminal(); /* the terminal as we found it */
  clear_prompt_text();
  free(ed.line);
  ed.line = NULL;
  ed.ready = 0;
  ed.closing = 1;
  uv_close((uv_handle_t *)&ed.poll, on_poll_closed);
}

/* libedit's own set-up, once per process. Its signal handlers stay off:
 * SIGINT belongs to the host's signal takers. */
static void rl_setup(lua_State *L) {
  rl_readline_name = "tycho";
  rl_instream = stdin;
  rl_outstream = stdout;
  rl_catch_signals = 0;
  if (rl_initialize() != 0)
    luaL_error(L, "cannot initialise the line editor");
  rl_basic_word_break_characters = WORD_BREAKS;
  rl_completer_word_break_characters = (char *)WORD_BREAKS;
  rl_attempted_completion_function = on_complete;
  rl_completion_append_character = '\0';
  using_history();
  ed.rl_ready = 1;
}

static int editor_init(lua_State *L) {
  if (ed.ready)
    return 0;
  if (ed.closing)
    return luaL_error(L, "the line editor is closing");
  if (!isatty(STDIN_FILENO))
    return luaL_error(L, "the line editor needs a terminal on stdin");
  if (!ed.rl_ready)
    rl_setup(L);
  int rc = uv_poll_init(ty_loop(), &ed.poll, STDIN_FILENO);
  if (rc != 0)
    return luaL_error(L, "cannot watch stdin: %s", uv_strerror(rc));
  ed.closer.close = editor_close;
  ty_host_track(&ed.closer);
  ed.ready = 1;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Ctrl-C for inputs that never yield                                     */

/* SIGINT reaches Lua through the loop (the host's uv_signal_t), which an
 * input stuck in `while true do end` never lets run. So while an input
 * runs, our handler goes in front of libuv's: it sets a debug hook on the
 * input's coroutine that raises at its next instruction (as lua.c does),
 * then hands the signal on to libuv's handler as usual. */
static struct sigaction prev_sigint;
static int guard_on;                /* our handler installed */
static lua_State *volatile guarded; /* the coroutine of the running input */
static int guarded_ref = LUA_NOREF; /* keeps it alive while guarded */
static volatile sig_atomic_t guard_hit;

static void on_guard_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (L == guarded)
    luaL_error(L, "interrupted");
}

static void on_sigint(int sig, siginfo_t *info, void *uc) {
  lua_State *L = guarded;
  if (L) {
    lua_sethook(L, on_guard_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT,
                1);
    guard_hit = 1;
  }
  if (prev_sigint.sa_flags & SA_SIGINFO)
    prev_sigint.sa_sigaction(sig, info, uc);
  else if (prev_sigint.sa_handler != SIG_DFL &&
           prev_sigint.sa_handler != SIG_IGN)
    prev_sigint.sa_handler(sig);
}

/* guard(): called from inside the task of an input, guards its coroutine
 * until unguard(). */
static int l_guard(lua_State *L) {
  if (!ty_task_current(L))
    return luaL_error(L, "guard must be called inside a task");
  if (!guard_on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigfillset(&sa.sa_mask);
    sa.sa_sigaction = on_sigint;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    if (sigaction(SIGINT, &sa, &prev_sigint) != 0)
      return luaL_error(L, "cannot watch SIGINT");
    guard_on = 1;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, guarded_ref);
  lua_pushthread(L);
  guarded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  guard_hit = 0;
  guarded = L;
  return 0;
}

/* unguard() -> true if a SIGINT hooked the input since guard(). */
static int l_unguard(lua_State *L) {
  lua_State *co = guarded;
  guarded = NULL;
  if (guard_on) {
    sigaction(SIGINT, &prev_sigint, NULL);
    guard_on = 0;
  }
  if (co)
    lua_sethook(co, NULL, 0, 0); /* it may go back to the task pool */
  luaL_unref(L, LUA_REGISTRYINDEX, guarded_ref);
  guarded_ref = LUA_NOREF;
  lua_pushboolean(L, guard_hit);
  return 1;
}

/* took_sigint() -> true once after a SIGINT that hooked a guarded input:
 * the signal takers then know it has been dealt with. */
static int l_took_sigint(lua_State *L) {
  lua_pushboolean(L, guard_hit);
  guard_hit = 0;
  return 1;
}

/* ---------------------------------------------------------------------- */
/* Lua API                                                                */

/* read(prompt) -> line | nil (end of input) | false, partial (interrupt).
 * Yields the calling task until the user ends a line. */
static int l_read(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  editor_init(L);
  if (ed.reader)
    return luaL_error(L, "a line read is already pending");
  uint64_t tok = ty_task_prepare(L);
  char *copy = strdup(prompt);
  if (!copy)
    return luaL_error(L, "out of memory");
  clear_prompt_text();
  ed.prompt = copy;
  int rc = prompt_install();
  if (rc != 0) {
    prompt_remove(0);
    clear_prompt_text();
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", uv_err_name(rc), uv_strerror(rc));
    lua_pushstring(L, uv_err_name(rc));
    return 3;
  }
  ed.reader = ty_task_current(L);
  ed.tok = tok;
  lua_settop(L, 0);
  return ty_task_park(L, on_read_cancel, NULL);
}

typedef struct {
  const char *text;
  size_t len;
} partial;

static void push_interrupted(lua_State *co, void *ud) {
  partial *p = ud;
  lua_pushboolean(co, 0);
  lua_pushlstring(co, p->text, p->len);
}

/* interrupt() -> true if a pending read was ended: it returns false and
 * the text typed so far (Ctrl-C at the prompt). */
static int l_interrupt(lua_State *L) {
  if (!ed.reader) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* Copy the typed text before libedit forgets it. */
  size_t len = rl_line_buffer && rl_end > 0 ? (size_t)rl_end : 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, len ? rl_line_buffer : "", len);
  luaL_pushresult(&b);
  partial p;
  p.text = lua_tolstring(L, -1, &p.len);
  prompt_remove(1);
  wake_reader(push_interrupted, 2, &p);
  lua_pushboolean(L, 1);
  return 1;
}

/* reading() -> true while a prompt waits for input */
static int l_reading(lua_State *L) {
  lua_pushboolean(L, ed.reader != NULL && ed.installed);
  return 1;
}

/* hide() -> true if a prompt was taken off the screen, so that output
 * printed now does not mix with it; show() puts it back as it was. */
static int l_hide(lua_State *L) {
  if (!ed.reader || !ed.installed || ed.hidden) {
    lua_pushboolean(L, 0);
    return 1;
  }
  ed.hidden = 1;
  fputs("\r\033[K", stdout);
  fflush(stdout);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_show(lua_State *L) {
  (void)L;
  if (!ed.hidden)
    return 0;
  ed.hidden = 0;
  fflush(stdout);
  if (ed.reader && ed.installed)
    rl_forced_update_display();
  return 0;
}

/* set_completer(fn | nil): fn(word) -> candidates joined by "\n" */
static int l_set_completer(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, ed.complete_ref);
  ed.complete_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 1)) {
    lua_settop(L, 1);
    ed.complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* history_load(path, max): reads the history file (missing is fine) and
 * caps the history at max entries. */
static int l_history_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max > 0 && max <= 1000000, 2, "out of range");
  editor_init(L);
  stifle_history((int)max);
  read_history(path);
  return 0;
}

static int l_history_add(lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  editor_init(L);
  add_history(text);
  return 0;
}

/* history_save(path) -> true | nil, message */
static int l_history_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  editor_init(L);
  if (write_history(path) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write %s", path);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* history() -> the entries, oldest first */
static int l_history(lua_State *L) {
  editor_init(L);
  int n = history_length;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    HIST_ENTRY *e = history_get(history_base + i);
    if (!e)
      continue;
    lua_pushstring(L, e->line);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  }
  return 1;
}

/* close(): takes the prompt down and gives the terminal back. */
static int l_close(lua_State *L) {
  (void)L;
  if (ed.ready) {
    ty_host_untrack(&ed.closer);
    editor_close(&ed.closer);
  }
  return 0;
}

/* modules() -> the names of the modules embedded in the binary */
static int l_modules(lua_State *L) {
  ty_embed_names(L);
  return 1;
}

int ty_repl_line_open(lua_State *L) {
  static const luaL_Reg funcs[] = {{"read", l_read},
                                   {"interrupt", l_interrupt},
                                   {"reading", l_reading},
                                   {"hide", l_hide},
                                   {"show", l_show},
                                   {"set_completer", l_set_completer},
                                   {"history_load", l_history_load},
                                   {"history_add", l_history_add},
                                   {"history_save", l_history_save},
                                   {"history", l_history},
                                   {"close", l_close},
                                   {"modules", l_modules},
                                   {"read_wait", l_read_wait},
                                   {"guard", l_guard},
                                   {"unguard", l_unguard},
                                   {"took_sigint", l_took_sigint},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
