/*
 * The C ABI against the hostile server of tests/support/hostile.rs (raw
 * HTTP and raw frames written by hand), one client per scenario: each
 * reports what the scenario must give (an error code, a close code, a
 * message), then ws_close drains it to WS_EVENT_TERMINATED, after which
 * every call but ws_free returns WS_ERR_CLOSED; ws_free releases it.
 * Run under ASan/UBSan/LSan by tests/c_abi.rs, which starts the server,
 * picks each scenario's script from the request path, and afterwards
 * checks that no permanent failure was retried.
 *
 * usage: hostile ws://127.0.0.1:PORT   (the scenario's path is appended)
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

/* Short timeouts, no heartbeat, default reconnect (first retry 0.5-1 s). */
#define BASE_OPTIONS \
  "{\"connect_timeout_ms\": 2000, \"close_timeout_ms\": 1000, \"ping_interval_ms\": 0}"

/* What triggers the ws_close of a scenario. */
typedef enum {
  ON_FIRST_EVENT, /* the first event (STATE CONNECTING): close while connecting */
  ON_ERROR,       /* the ERROR with want_error (or alt_error) */
  ON_RECONNECTING,
  ON_TEXT,        /* a TEXT equal to close_text */
} trigger;

typedef struct {
  const char *path;
  const char *options;   /* NULL: BASE_OPTIONS */
  int32_t want_error;    /* this ERROR must come; 0: no ERROR may come */
  int32_t alt_error;     /* accepted instead of want_error; 0: none */
  unsigned want_close;   /* a CLOSED with this code must come; 0: none needed */
  int ends_itself;       /* a permanent failure: no RECONNECTING */
  trigger close_on;
  const char *close_text;
  long want_empty_texts; /* empty TEXT events before close_text; -1: any */
} scenario;

static const scenario SCENARIOS[] = {
    {"/wrong-accept", NULL, WS_ERROR_HANDSHAKE, 0, 0, 1, ON_ERROR, NULL, -1},
    {"/forbidden", NULL, 403, 0, 0, 1, ON_ERROR, NULL, -1},
    {"/endless-headers", NULL, WS_ERROR_HANDSHAKE, 0, 0, 1, ON_ERROR, NULL, -1},
    {"/bad-utf8", NULL, WS_ERROR_PROTOCOL, 0, 1007, 1, ON_ERROR, NULL, -1},
    {"/huge-length", NULL, WS_ERROR_MESSAGE_TOO_BIG, WS_ERROR_PROTOCOL, 0, 1, ON_ERROR, NULL, -1},
    {"/rsv1", NULL, WS_ERROR_PROTOCOL, 0, 1002, 1, ON_ERROR, NULL, -1},
    {"/reset-mid-frame", NULL, WS_ERROR_CONNECTION_LOST, 0, 1006, 0, ON_RECONNECTING, NULL, -1},
    {"/half-close", NULL, WS_ERROR_CONNECTION_LOST, 0, 1006, 0, ON_RECONNECTING, NULL, -1},
    {"/close-1012", NULL, 0, 0, 1012, 0, ON_RECONNECTING, NULL, -1},
    {"/ping-flood", NULL, 0, 0, 1000, 0, ON_TEXT, "done", 0},
    {"/empty-flood", "{\"ping_interval_ms\": 0, \"max_unpolled_bytes\": 4096}", 0, 0, 1000, 0,
     ON_TEXT, "end", 100000},
    {"/silence", NULL, 0, 0, 0, 0, ON_FIRST_EVENT, NULL, -1},
};

#define MAX_SEEN 32

typedef struct {
  int32_t errors[MAX_SEEN];
  int n_errors;
  unsigned closes[MAX_SEEN];
  int n_closes;
  int reconnecting;
  int opened;
  long empty_texts;
  unsigned long checksum; /* touches every payload byte (ASan checks the reads) */
} seen;

static int has_error(const seen *s, int32_t code) {
  int i;
  for (i = 0; i < s->n_errors; i++)
    if (s->errors[i] == code) return 1;
  return 0;
}

static int has_close(const seen *s, unsigned code) {
  int i;
  for (i = 0; i < s->n_closes; i++)
    if (s->closes[i] == code) return 1;
  return 0;
}

/* Records one event; prints it unless it is one of a flood's messages. */
static void record(const scenario *sc, seen *s, const ws_event *ev) {
  size_t i;
  if (ev->kind != WS_EVENT_TEXT || ev->len > 0) print_event(ev);
  if (ev->len > 0) {
    CHECK(ev->data != NULL, "%s: %s with len %zu and NULL data", sc->path, event_name(ev->kind),
          ev->len);
    for (i = 0; i < ev->len; i++) s->checksum += ev->data[i];
  }
  switch (ev->kind) {
  case WS_EVENT_ERROR:
    CHECK(ev->data != NULL && ev->len > 0, "%s: WS_EVENT_ERROR %d without a message", sc->path,
          (int)ev->error);
    CHECK_NUL_TERMINATED(*ev);
    if (s->n_errors < MAX_SEEN) s->errors[s->n_errors++] = ev->error;
    break;
  case WS_EVENT_CLOSED:
    CHECK_NUL_TERMINATED(*ev);
    if (s->n_closes < MAX_SEEN) s->closes[s->n_closes++] = ev->close_code;
    break;
  case WS_EVENT_RECONNECTING:
    s->reconnecting++;
    break;
  case WS_EVENT_OPEN:
    s->opened++;
    break;
  case WS_EVENT_TEXT:
    if (ev->len == 0) s->empty_texts++;
    break;
  default:
    break;
  }
}

static int triggers(const scenario *sc, const ws_event *ev) {
  switch (sc->close_on) {
  case ON_FIRST_EVENT:
    return 1;
  case ON_ERROR:
    return ev->kind == WS_EVENT_ERROR &&
           (ev->error == sc->want_error || (sc->alt_error != 0 && ev->error == sc->alt_error));
  case ON_RECONNECTING:
    return ev->kind == WS_EVENT_RECONNECTING;
  case ON_TEXT:
    return ev->kind == WS_EVENT_TEXT && ev->len == strlen(sc->close_text) &&
           memcmp(ev->data, sc->close_text, ev->len) == 0;
  }
  return 0;
}

static void run(const char *base, const scenario *sc) {
  char url[256];
  ws_client *c = NULL;
  seen s;
  int64_t deadline;
  long polls;
  int closed = 0, terminated = 0;
  ws_status st;

  memset(&s, 0, sizeof s);
  CHECK(snprintf(url, sizeof url, "%s%s", base, sc->path) < (int)sizeof url, "URL too long");
  STAGE(sc->path);
  CHECK_STATUS(ws_connect(url, sc->options ? sc->options : BASE_OPTIONS, &c), WS_OK);

  /* Bounded in time and in events (a flood is 100,000 messages). */
  deadline = now_ms() + EVENT_WAIT_MS;
  for (polls = 0; polls < 300000 && !terminated; polls++) {
    ws_event ev = NEXT_EVENT(c, deadline);
    record(sc, &s, &ev);
    if (ev.kind == WS_EVENT_TERMINATED) {
      terminated = 1;
      CHECK(ev.state == WS_STATE_CLOSED, "%s: WS_EVENT_TERMINATED with state %s", sc->path,
            state_name(ev.state));
    } else if (!closed && triggers(sc, &ev)) {
      st = ws_close(c, 1000, NULL);
      /* A client that ended by itself (permanent failure) may be gone. */
      CHECK(st == WS_OK || (sc->ends_itself && st == WS_ERR_CLOSED),
            "%s: ws_close returned %s", sc->path, status_name(st));
      printf("  ws_close -> %s\n", status_name(st));
      closed = 1;
    }
  }
  CHECK(terminated, "%s: no WS_EVENT_TERMINATED within %ld events", sc->path, polls);
  CHECK(closed, "%s: the event that triggers ws_close never came", sc->path);

  if (sc->want_error != 0)
    CHECK(has_error(&s, sc->want_error) || (sc->alt_error != 0 && has_error(&s, sc->alt_error)),
          "%s: no WS_EVENT_ERROR %d (%d errors seen, first %d)", sc->path, (int)sc->want_error,
          s.n_errors, s.n_errors ? (int)s.errors[0] : 0);
  else
    CHECK(s.n_errors == 0, "%s: unexpected WS_EVENT_ERROR %d", sc->path, (int)s.errors[0]);
  if (sc->want_close != 0)
    CHECK(has_close(&s, sc->want_close), "%s: no WS_EVENT_CLOSED %u (%d closes seen)", sc->path,
          sc->want_close, s.n_closes);
  if (sc->ends_itself)
    CHECK(s.reconnecting == 0, "%s: a permanent failure was retried", sc->path);
  if (sc->want_empty_texts >= 0)
    CHECK(s.empty_texts == sc->want_empty_texts, "%s: %ld empty messages, expected %ld", sc->path,
          s.empty_texts, sc->want_empty_texts);

  /* Terminated: every call but ws_free says so. */
  {
    ws_event ev;
    CHECK_FAILS(ws_poll_event(c, 0, &ev), WS_ERR_CLOSED);
    CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"late", 4), WS_ERR_CLOSED);
    CHECK_FAILS(ws_close(c, 1000, NULL), WS_ERR_CLOSED);
  }
  ws_free(c);
  printf("  %s: ok (%d errors, %d closes, %d reconnecting, checksum %lu)\n", sc->path,
         s.n_errors, s.n_closes, s.reconnecting, s.checksum);
}

int main(int argc, char **argv) {
  size_t i, live_before;
  test_begin(90);
  CHECK(argc >= 2, "usage: hostile ws://127.0.0.1:PORT");
  live_before = ws_live_clients();
  for (i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) run(argv[1], &SCENARIOS[i]);
  CHECK(ws_live_clients() == live_before, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_before);
  printf("hostile: all %zu scenarios passed\n", sizeof SCENARIOS / sizeof SCENARIOS[0]);
  return 0;
}
