/*
 * ws_set_log_callback: lines arrive at or above the chosen level with the
 * caller's user_data, never carry header values or payloads (nor do error
 * events), stop once logging is turned off; bad levels are refused.
 *
 * usage: log ws://127.0.0.1:PORT/echo [ws://127.0.0.1:DEADPORT/]
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

#define SECRET_AUTH "Bearer HDR-SECRET-ONE"
#define SECRET_KEY "HDR-SECRET-TWO"
#define SECRET_PAYLOAD "PAYLOAD-SECRET-THREE"

static int marker; /* &marker is the user_data */
static atomic_int lines;
static atomic_int max_level = WS_LOG_DEBUG;
static atomic_int bad_level;
static atomic_int bad_user_data;
static atomic_int null_message;
static atomic_int leaks;
static pthread_mutex_t first_leak_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_leak[512];

static int has_secret(const char *s, size_t len) {
  static const char *const secrets[] = {"HDR-SECRET-ONE", SECRET_KEY, SECRET_PAYLOAD};
  size_t i, j;
  for (i = 0; i < 3; i++) {
    size_t n = strlen(secrets[i]);
    for (j = 0; j + n <= len; j++)
      if (memcmp(s + j, secrets[i], n) == 0) return 1;
  }
  return 0;
}

/* Runs on Tether's runtime thread (or the calling one): flags only. */
static void on_log(void *user_data, ws_log_level level, const char *message) {
  atomic_fetch_add(&lines, 1);
  if (user_data != &marker) atomic_fetch_add(&bad_user_data, 1);
  if ((int)level < WS_LOG_ERROR || (int)level > atomic_load(&max_level))
    atomic_fetch_add(&bad_level, 1);
  if (message == NULL) {
    atomic_fetch_add(&null_message, 1);
    return;
  }
  printf("  log[%d] %s\n", (int)level, message);
  if (has_secret(message, strlen(message))) {
    if (atomic_fetch_add(&leaks, 1) == 0) {
      pthread_mutex_lock(&first_leak_lock);
      snprintf(first_leak, sizeof first_leak, "%s", message);
      pthread_mutex_unlock(&first_leak_lock);
    }
  }
}

/* Polls until an event of `kind`; error events must not leak secrets. */
static void poll_until(int line, ws_client *c, ws_event_kind kind) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  for (i = 0; i < 100; i++) {
    ws_event ev = next_event_at(__FILE__, line, c, deadline);
    print_event(&ev);
    if (ev.kind == WS_EVENT_ERROR || ev.kind == WS_EVENT_CLOSED)
      if (ev.data != NULL && has_secret((const char *)ev.data, ev.len))
        fail_at(__FILE__, line, "event", "%s carries a header value or payload: \"%.*s\"",
                event_name(ev.kind), (int)ev.len, (const char *)ev.data);
    if (ev.kind == kind) return;
    if (ev.kind == WS_EVENT_TERMINATED)
      fail_at(__FILE__, line, "poll_until", "WS_EVENT_TERMINATED while waiting for %s",
              event_name(kind));
  }
  fail_at(__FILE__, line, "poll_until", "no %s within 100 events", event_name(kind));
}

static void check_lines_clean(int line) {
  if (atomic_load(&bad_user_data))
    fail_at(__FILE__, line, "log", "%d lines with a user_data other than the one given",
            atomic_load(&bad_user_data));
  if (atomic_load(&bad_level))
    fail_at(__FILE__, line, "log", "%d lines outside WS_LOG_ERROR..the level asked",
            atomic_load(&bad_level));
  if (atomic_load(&null_message))
    fail_at(__FILE__, line, "log", "%d lines with a NULL message", atomic_load(&null_message));
  if (atomic_load(&leaks)) {
    pthread_mutex_lock(&first_leak_lock);
    fail_at(__FILE__, line, "log", "%d lines carry a header value or payload, first: \"%s\"",
            atomic_load(&leaks), first_leak);
  }
}

int main(int argc, char **argv) {
  const char *url, *dead_url;
  ws_client *c = NULL;
  int before;

  test_begin(55);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path [ws://127.0.0.1:DEADPORT/]\n", argv[0]);
    return 2;
  }
  url = argv[1];
  dead_url = argc > 2 ? argv[2] : "ws://127.0.0.1:1/";

  STAGE("invalid levels are refused");
  CHECK_FAILS(ws_set_log_callback(on_log, &marker, (ws_log_level)5), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_set_log_callback(on_log, &marker, (ws_log_level)-1), WS_ERR_INVALID_ARGUMENT);

  STAGE("WS_LOG_DEBUG: a session with secret headers and payloads");
  CHECK_STATUS(ws_set_log_callback(on_log, &marker, WS_LOG_DEBUG), WS_OK);
  CHECK_STATUS(ws_connect(url, "{\"headers\": {\"Authorization\": \"" SECRET_AUTH "\"}}", &c),
               WS_OK);
  poll_until(__LINE__, c, WS_EVENT_OPEN);
  CHECK_STATUS(ws_set_header(c, "X-Api-Key", SECRET_KEY), WS_OK);
  CHECK_STATUS(ws_reconnect(c), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_OPEN);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)SECRET_PAYLOAD, strlen(SECRET_PAYLOAD)),
               WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TEXT);
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TERMINATED);
  ws_free(c);
  c = NULL;

  STAGE("WS_LOG_DEBUG: failed connects with a secret header");
  CHECK_STATUS(ws_connect(dead_url,
                          "{\"headers\": {\"Authorization\": \"" SECRET_AUTH "\"}, "
                          "\"reconnect\": {\"initial_delay_ms\": 10, \"max_attempts\": 2}}",
                          &c),
               WS_OK);
  CHECK_STATUS(ws_set_header(c, "X-Api-Key", SECRET_KEY), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_RECONNECTING);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)SECRET_PAYLOAD, strlen(SECRET_PAYLOAD)),
               WS_OK);
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TERMINATED);
  ws_free(c);
  c = NULL;
  CHECK(atomic_load(&lines) > 0, "no log line at WS_LOG_DEBUG for connects, opens and closes");
  check_lines_clean(__LINE__);

  STAGE("WS_LOG_ERROR: only errors");
  atomic_store(&max_level, WS_LOG_ERROR);
  CHECK_STATUS(ws_set_log_callback(on_log, &marker, WS_LOG_ERROR), WS_OK);
  CHECK_STATUS(ws_connect(url, NULL, &c), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_OPEN);
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TERMINATED);
  ws_free(c);
  c = NULL;
  check_lines_clean(__LINE__);

  STAGE("logging off: no more lines");
  CHECK_STATUS(ws_set_log_callback(NULL, NULL, WS_LOG_OFF), WS_OK);
  before = atomic_load(&lines);
  CHECK_STATUS(ws_connect(dead_url, "{\"reconnect\": {\"enabled\": false}}", &c), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TERMINATED);
  ws_free(c);
  CHECK(atomic_load(&lines) == before, "%d lines after logging was turned off",
        atomic_load(&lines) - before);
  /* A NULL callback with a level also turns it off. */
  CHECK_STATUS(ws_set_log_callback(NULL, &marker, WS_LOG_DEBUG), WS_OK);
  CHECK_STATUS(ws_connect(dead_url, "{\"reconnect\": {\"enabled\": false}}", &c), WS_OK);
  poll_until(__LINE__, c, WS_EVENT_TERMINATED);
  ws_free(c);
  CHECK(atomic_load(&lines) == before, "%d lines with a NULL callback",
        atomic_load(&lines) - before);

  printf("log: all checks passed (%d lines)\n", atomic_load(&lines));
  return 0;
}
