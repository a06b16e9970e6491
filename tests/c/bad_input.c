/*
 * Every bad input gives the documented status, leaves a message in
 * ws_last_error(), leaves out-parameters untouched, and never crashes.
 * Also: ws_version() against the header's macros, ws_live_clients()
 * around connect/free, and the calls a closed client refuses.
 *
 * usage: bad_input ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

/* A pointer value no call may write: any change means *out was written. */
#define CLIENT_SENTINEL ((ws_client *)(uintptr_t)0x5e471e1)

/* ws_connect must fail with `want`, keep *out and not create a client. */
static void connect_fails(int line, const char *url, const char *options, ws_status want) {
  ws_client *c = CLIENT_SENTINEL;
  size_t live = ws_live_clients();
  ws_status got = ws_connect(url, options, &c);
  const char *msg = ws_last_error();
  if (got != want)
    fail_at(__FILE__, line, "ws_connect", "url %s options %s: returned %s (%d), expected %s",
            url ? url : "NULL", options ? options : "NULL", status_name(got), (int)got,
            status_name(want));
  if (c != CLIENT_SENTINEL)
    fail_at(__FILE__, line, "ws_connect", "url %s options %s: failed but wrote *out",
            url ? url : "NULL", options ? options : "NULL");
  if (msg == NULL || msg[0] == '\0')
    fail_at(__FILE__, line, "ws_connect", "url %s options %s: failed but ws_last_error() is %s",
            url ? url : "NULL", options ? options : "NULL", msg ? "empty" : "NULL");
  if (ws_live_clients() != live)
    fail_at(__FILE__, line, "ws_connect", "a failed call changed ws_live_clients() from %zu to %zu",
            live, ws_live_clients());
  printf("  ok: ws_connect(%s, %s) -> %s: \"%s\"\n", url ? url : "NULL",
         options ? options : "NULL", status_name(want), msg);
}

/* Polls until WS_EVENT_TERMINATED (bounded), then checks WS_ERR_CLOSED. */
static void drain_to_terminated(ws_client *c) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  ws_event ev;
  for (i = 0; i < 64; i++) {
    ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_TERMINATED) break;
  }
  CHECK(ev.kind == WS_EVENT_TERMINATED, "no WS_EVENT_TERMINATED within 64 events");
  CHECK_FAILS(ws_poll_event(c, 0, &ev), WS_ERR_CLOSED);
}

int main(int argc, char **argv) {
  const char *url;
  const char *err;
  ws_client *c = NULL;
  ws_client *c2 = NULL;
  ws_event ev, ev_sentinel;
  ws_client_stats st, st_sentinel;
  size_t live_start;
  char version[64];
  char long_reason[200];
  char max_reason[124];
  int64_t deadline;
  int i;
  static const uint16_t bad_codes[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016,
                                       1100, 2000, 2999, 5000, 65535};

  test_begin(50);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path\n", argv[0]);
    return 2;
  }
  url = argv[1];
  memset(&ev_sentinel, 0xA5, sizeof ev_sentinel);
  memset(&st_sentinel, 0xA5, sizeof st_sentinel);

  STAGE("ws_last_error before any failure");
  err = ws_last_error();
  CHECK(err == NULL, "ws_last_error() is \"%s\" before any call failed, expected NULL", err);

  STAGE("ws_version and the header macros");
  CHECK(ws_version() != NULL, "ws_version() is NULL");
  snprintf(version, sizeof version, "%d.%d.%d", TETHER_VERSION_MAJOR, TETHER_VERSION_MINOR,
           TETHER_VERSION_PATCH);
  CHECK(strcmp(ws_version(), version) == 0, "ws_version() is \"%s\", the header says \"%s\"",
        ws_version(), version);
  CHECK(ws_version() == ws_version(), "ws_version() is not one static string");

  live_start = ws_live_clients();
  printf("  ws_live_clients() at start: %zu\n", live_start);

  STAGE("ws_connect with bad arguments");
  connect_fails(__LINE__, NULL, NULL, WS_ERR_NULL_ARGUMENT);
  connect_fails(__LINE__, NULL, "{}", WS_ERR_NULL_ARGUMENT);
  {
    size_t live = ws_live_clients();
    CHECK_FAILS(ws_connect(url, NULL, NULL), WS_ERR_NULL_ARGUMENT);
    CHECK_FAILS(ws_connect(NULL, NULL, NULL), WS_ERR_NULL_ARGUMENT);
    CHECK(ws_live_clients() == live, "a failed ws_connect created a client");
  }
  connect_fails(__LINE__, "", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "not a url", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "ws://", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "ws://[::1/", NULL, WS_ERR_INVALID_ARGUMENT);
  {
    /* A port out of 1..65535 makes a malformed URL (not port 80). */
    static const char *const bad_ports[] = {"ws://127.0.0.1:99999/", "ws://127.0.0.1:65536/",
                                            "ws://127.0.0.1:-1/"};
    for (i = 0; i < 3; i++) {
      ws_client *p = CLIENT_SENTINEL;
      ws_status s = ws_connect(bad_ports[i], "{\"reconnect\": {\"enabled\": false}}", &p);
      CHECK(s == WS_ERR_INVALID_ARGUMENT && p == CLIENT_SENTINEL,
                "ws_connect(\"%s\") returned %s, expected WS_ERR_INVALID_ARGUMENT (a port "
                "out of range must not become port 80)",
                bad_ports[i], status_name(s));
      if (s == WS_OK) {
        ws_free(p);
      } else {
        connect_fails(__LINE__, bad_ports[i], NULL, WS_ERR_INVALID_ARGUMENT);
      }
    }
  }
  connect_fails(__LINE__, "http://127.0.0.1:1/", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "https://127.0.0.1:1/", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "ftp://127.0.0.1:1/", NULL, WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, "ws://127.0.0.1:1/\xff\xfe", NULL, WS_ERR_INVALID_ARGUMENT);
  /* Options JSON that does not parse. */
  connect_fails(__LINE__, url, "{", WS_ERR_INVALID_ARGUMENT);
  /* (Not tested: "" and whitespace-only options. The library takes them
   * as the defaults; the header only documents NULL for that.) */
  connect_fails(__LINE__, url, "{\"queue\": {\"max_messages\": 3}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{} trailing", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "\xff\xfe", WS_ERR_INVALID_ARGUMENT);
  /* Valid JSON, but not an options object. */
  connect_fails(__LINE__, url, "[]", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "42", WS_ERR_INVALID_ARGUMENT);
  /* Unknown keys, at the top and nested. */
  connect_fails(__LINE__, url, "{\"no_such_option\": 1}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"queue\": {\"max_mesages\": 3}}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"reconnect\": {\"enabled\": true, \"bogus\": 0}}",
                WS_ERR_INVALID_ARGUMENT);
  /* Wrong types. */
  connect_fails(__LINE__, url, "{\"connect_timeout_ms\": \"ten seconds\"}",
                WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"connect_timeout_ms\": -1}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"subprotocols\": \"chat\"}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"headers\": [\"Authorization\"]}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"reconnect\": {\"enabled\": \"yes\"}}",
                WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"queue\": {\"max_messages\": 1.5}}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"queue\": {\"overflow\": \"explode\"}}",
                WS_ERR_INVALID_ARGUMENT);
  /* Header names and values that cannot go into an HTTP request. */
  connect_fails(__LINE__, url, "{\"headers\": {\"Bad Name\": \"v\"}}", WS_ERR_INVALID_ARGUMENT);
  connect_fails(__LINE__, url, "{\"headers\": {\"X-A\": \"v\\r\\nX-Injected: 1\"}}",
                WS_ERR_INVALID_ARGUMENT);
  CHECK(ws_live_clients() == live_start, "ws_live_clients() is %zu after failed connects, expected %zu",
        ws_live_clients(), live_start);

  STAGE("successful calls leave ws_last_error unchanged");
  {
    char before[512];
    err = ws_last_error();
    CHECK(err != NULL, "ws_last_error() is NULL right after a failure");
    snprintf(before, sizeof before, "%s", err);
    CHECK_STATUS(ws_connect(url, "{}", &c), WS_OK);
    CHECK(c != NULL && c != CLIENT_SENTINEL, "ws_connect returned WS_OK but *out is %p",
          (void *)c);
    err = ws_last_error();
    CHECK(err != NULL && strcmp(err, before) == 0,
          "a successful ws_connect changed ws_last_error() from \"%s\" to \"%s\"", before,
          err ? err : "NULL");
    CHECK(ws_live_clients() == live_start + 1, "ws_live_clients() is %zu, expected %zu",
          ws_live_clients(), live_start + 1);
  }

  STAGE("NULL client to every function");
  ev = ev_sentinel;
  CHECK_FAILS(ws_poll_event(NULL, 0, &ev), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_event(NULL, -1, &ev), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_event(NULL, 0, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK(memcmp(&ev, &ev_sentinel, sizeof ev) == 0, "failed ws_poll_event wrote to *out");
  CHECK_FAILS(ws_send(NULL, WS_TEXT, (const uint8_t *)"x", 1), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_send(NULL, WS_BINARY, NULL, 0), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_close(NULL, 1000, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_close(NULL, 1000, "bye"), WS_ERR_NULL_ARGUMENT);
  st = st_sentinel;
  CHECK_FAILS(ws_stats(NULL, &st), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_stats(NULL, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK(memcmp(&st, &st_sentinel, sizeof st) == 0, "failed ws_stats wrote to *out");
  CHECK_FAILS(ws_pause(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_resume(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_network_changed(NULL, 1), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_network_changed(NULL, 0), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_reconnect(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_flush(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_set_header(NULL, "X-A", "b"), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_set_header(NULL, NULL, NULL), WS_ERR_NULL_ARGUMENT);
  {
    int fd = ws_event_fd(NULL);
    err = ws_last_error();
    CHECK(fd == -1, "ws_event_fd(NULL) returned %d, expected -1", fd);
    CHECK(err != NULL && err[0] != '\0', "ws_event_fd(NULL) failed without a message");
    printf("  ok: ws_event_fd(NULL) -> -1: \"%s\"\n", err);
  }
  ws_free(NULL); /* documented as fine */

  STAGE("ws_set_header with bad arguments");
  CHECK_FAILS(ws_set_header(c, NULL, "v"), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, NULL, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "", "v"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "Bad Name", "v"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "X-A:", "v"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "\xff", "v"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "X-A", "v\r\nX-Injected: 1"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_header(c, "X-A", "\xff"), WS_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(ws_set_header(c, "X-A", "fine"), WS_OK);
  CHECK_STATUS(ws_set_header(c, "x-a", NULL), WS_OK); /* removes it */
  CHECK_STATUS(ws_set_header(c, "X-Not-Set", NULL), WS_OK);

  STAGE("NULL out to ws_poll_event and ws_stats");
  CHECK_FAILS(ws_poll_event(c, 0, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_event(c, 100, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_stats(c, NULL), WS_ERR_NULL_ARGUMENT);

  STAGE("ws_poll_event with an invalid timeout");
  ev = ev_sentinel;
  CHECK_FAILS(ws_poll_event(c, -5, &ev), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_poll_event(c, -2, &ev), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_poll_event(c, INT32_MIN, &ev), WS_ERR_INVALID_ARGUMENT);
  CHECK(memcmp(&ev, &ev_sentinel, sizeof ev) == 0, "failed ws_poll_event wrote to *out");

  STAGE("wait for WS_EVENT_OPEN");
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0; i < 16; i++) {
    ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    CHECK(ev.kind == WS_EVENT_STATE || ev.kind == WS_EVENT_OPEN, "unexpected %s before open",
          event_name(ev.kind));
    if (ev.kind == WS_EVENT_OPEN) break;
  }
  CHECK(ev.kind == WS_EVENT_OPEN, "no WS_EVENT_OPEN within 16 events");

  STAGE("ws_send with bad arguments");
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"\xff\xfe", 2), WS_ERR_INVALID_ARGUMENT);
  /* Overlong encoding of '/', a lone surrogate, a truncated sequence. */
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"\xc0\xaf", 2), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"\xed\xa0\x80", 3), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"ok \xe2\x9c", 5), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send(c, (ws_message_kind)7, (const uint8_t *)"x", 1), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send(c, (ws_message_kind)0, (const uint8_t *)"x", 1), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_send(c, (ws_message_kind)-1, (const uint8_t *)"x", 1), WS_ERR_INVALID_ARGUMENT);
  /* "data may be NULL only when len is 0": a NULL required pointer. */
  CHECK_FAILS(ws_send(c, WS_BINARY, NULL, 5), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_send(c, WS_TEXT, NULL, 1), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_send(c, WS_BINARY, NULL, SIZE_MAX), WS_ERR_NULL_ARGUMENT);

  STAGE("ws_close with bad arguments leaves the client open");
  for (i = 0; i < (int)(sizeof bad_codes / sizeof bad_codes[0]); i++) {
    ws_status s = ws_close(c, bad_codes[i], "x");
    err = ws_last_error();
    CHECK(s == WS_ERR_INVALID_ARGUMENT, "ws_close(c, %u, \"x\") returned %s, expected %s",
          (unsigned)bad_codes[i], status_name(s), status_name(WS_ERR_INVALID_ARGUMENT));
    CHECK(err != NULL && err[0] != '\0', "ws_close(c, %u) failed without a message",
          (unsigned)bad_codes[i]);
    printf("  ok: ws_close(c, %u, \"x\") -> WS_ERR_INVALID_ARGUMENT: \"%s\"\n",
           (unsigned)bad_codes[i], err);
  }
  memset(long_reason, 'r', sizeof long_reason);
  long_reason[124] = '\0'; /* 124 bytes: one too many */
  CHECK_FAILS(ws_close(c, 1000, long_reason), WS_ERR_INVALID_ARGUMENT);
  long_reason[sizeof long_reason - 1] = '\0';
  memset(long_reason, 'r', sizeof long_reason - 1);
  CHECK_FAILS(ws_close(c, 1000, long_reason), WS_ERR_INVALID_ARGUMENT);
  /* 41 three-byte characters: 123 bytes... plus one more ASCII byte. */
  {
    char multi[160];
    size_t n = 0;
    for (i = 0; i < 41; i++) {
      multi[n++] = '\xe2';
      multi[n++] = '\x9c';
      multi[n++] = '\x93';
    }
    multi[n++] = '!';
    multi[n] = '\0';
    CHECK_FAILS(ws_close(c, 1000, multi), WS_ERR_INVALID_ARGUMENT);
  }
  CHECK_FAILS(ws_close(c, 1000, "\xff"), WS_ERR_INVALID_ARGUMENT);
  /* The client is still usable: an echo round trip. */
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"still open", 10), WS_OK);
  ev = NEXT_EVENT(c, now_ms() + EVENT_WAIT_MS);
  print_event(&ev);
  CHECK(ev.kind == WS_EVENT_TEXT, "got %s, expected the WS_EVENT_TEXT echo", event_name(ev.kind));
  CHECK_DATA(ev, "still open", 10);
  st = st_sentinel;
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  CHECK(st.messages_out == 1, "messages_out %llu: a refused ws_send was sent?",
        (unsigned long long)st.messages_out);

  STAGE("close with a reason of exactly 123 bytes, then use after close");
  memset(max_reason, 'm', 123);
  max_reason[123] = '\0';
  CHECK_STATUS(ws_close(c, 4000, max_reason), WS_OK);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"late", 4), WS_ERR_CLOSED);
  CHECK_FAILS(ws_send(c, WS_BINARY, (const uint8_t *)"late", 4), WS_ERR_CLOSED);
  CHECK_FAILS(ws_close(c, 1000, NULL), WS_ERR_CLOSED);
  CHECK_FAILS(ws_close(c, 1000, "again"), WS_ERR_CLOSED);
  /* "WS_ERR_CLOSED: the client was closed by ws_close" for the rest too. */
  CHECK_FAILS(ws_pause(c), WS_ERR_CLOSED);
  CHECK_FAILS(ws_resume(c), WS_ERR_CLOSED);
  CHECK_FAILS(ws_network_changed(c, 1), WS_ERR_CLOSED);
  CHECK_FAILS(ws_reconnect(c), WS_ERR_CLOSED);
  CHECK_FAILS(ws_flush(c), WS_ERR_CLOSED);
  CHECK_FAILS(ws_set_header(c, "X-A", "b"), WS_ERR_CLOSED);
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  drain_to_terminated(c);
  ev = ev_sentinel;
  CHECK_FAILS(ws_poll_event(c, 0, &ev), WS_ERR_CLOSED);
  CHECK(memcmp(&ev, &ev_sentinel, sizeof ev) == 0, "failed ws_poll_event wrote to *out");
  ws_free(c);
  c = NULL;
  CHECK(ws_live_clients() == live_start, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_start);

  STAGE("ws_free of a client never closed, still connecting");
  CHECK_STATUS(ws_connect(url, NULL, &c2), WS_OK);
  CHECK(ws_live_clients() == live_start + 1, "ws_live_clients() is %zu, expected %zu",
        ws_live_clients(), live_start + 1);
  ws_free(c2);
  CHECK(ws_live_clients() == live_start, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_start);

  STAGE("ws_free of an open client never closed");
  CHECK_STATUS(ws_connect(url, NULL, &c2), WS_OK);
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0; i < 16; i++) {
    ev = NEXT_EVENT(c2, deadline);
    if (ev.kind == WS_EVENT_OPEN) break;
  }
  CHECK(ev.kind == WS_EVENT_OPEN, "no WS_EVENT_OPEN within 16 events");
  CHECK_STATUS(ws_send(c2, WS_TEXT, (const uint8_t *)"unpolled echo", 13), WS_OK);
  ws_free(c2);
  CHECK(ws_live_clients() == live_start, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_start);

  printf("bad_input: all checks passed\n");
  return 0;
}
