/*
 * Server-Sent Events through the C ABI, under ASan/UBSan: events in order
 * with their type, id and joined data; a stream end resumed with
 * Last-Event-ID after the stream's retry: delay; a header set for the
 * next requests; sse_close from the polling thread drains to
 * SSE_EVENT_TERMINATED; 204 ends quietly, 403 and a wrong Content-Type
 * fail without retry; bad input gets a status and a message.
 *
 * argv[1]: the base URL of the SSE server of tests/c_abi.rs (http://…).
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

static const char *sse_event_name(int k) {
  switch (k) {
  case SSE_EVENT_STATE: return "SSE_EVENT_STATE";
  case SSE_EVENT_OPEN: return "SSE_EVENT_OPEN";
  case SSE_EVENT_MESSAGE: return "SSE_EVENT_MESSAGE";
  case SSE_EVENT_RECONNECTING: return "SSE_EVENT_RECONNECTING";
  case SSE_EVENT_ERROR: return "SSE_EVENT_ERROR";
  case SSE_EVENT_TERMINATED: return "SSE_EVENT_TERMINATED";
  default: return "(unknown sse_event_kind)";
  }
}

static void print_sse_event(const sse_event *ev) {
  printf("  event %s state=%s len=%zu error=%d attempt=%u delay_ms=%llu", sse_event_name(ev->kind),
         state_name(ev->state), ev->len, (int)ev->error, (unsigned)ev->attempt,
         (unsigned long long)ev->delay_ms);
  if (ev->kind == SSE_EVENT_MESSAGE)
    printf(" type=\"%s\" id=%s%s%s", ev->type, ev->id ? "\"" : "", ev->id ? ev->id : "NULL",
           ev->id ? "\"" : "");
  if (ev->data != NULL) printf(" data=\"%.*s\"", (int)ev->len, (const char *)ev->data);
  printf("\n");
}

/* The next event, within EVENT_WAIT_MS; anything else fails the test. */
static sse_event next_sse(sse_client *c) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  for (i = 0; i < 1000000; i++) {
    sse_event ev;
    int64_t left = deadline - now_ms();
    ws_status s;
    if (left <= 0) break;
    s = sse_poll_event(c, (int32_t)(left < 100 ? left : 100), &ev);
    if (s == WS_OK) {
      print_sse_event(&ev);
      return ev;
    }
    CHECK(s == WS_TIMEOUT, "sse_poll_event returned %s", status_name(s));
  }
  CHECK(0, "no SSE event within %d ms", EVENT_WAIT_MS);
  exit(1); /* not reached */
}

/* Skips state events; returns the next other one. */
static sse_event next_not_state(sse_client *c) {
  int i;
  for (i = 0; i < 100; i++) {
    sse_event ev = next_sse(c);
    if (ev.kind != SSE_EVENT_STATE) return ev;
  }
  CHECK(0, "only state events");
  exit(1);
}

static void expect_message(sse_client *c, const char *type, const char *id, const char *data) {
  sse_event ev = next_not_state(c);
  CHECK(ev.kind == SSE_EVENT_MESSAGE, "got %s, expected SSE_EVENT_MESSAGE", sse_event_name(ev.kind));
  CHECK(ev.state == WS_STATE_OPEN, "state %s", state_name(ev.state));
  CHECK(ev.type != NULL && strcmp(ev.type, type) == 0, "type \"%s\", expected \"%s\"", ev.type, type);
  if (id == NULL) {
    CHECK(ev.id == NULL, "id \"%s\", expected NULL", ev.id);
  } else {
    CHECK(ev.id != NULL && strcmp(ev.id, id) == 0, "id %s, expected \"%s\"", ev.id ? ev.id : "NULL",
          id);
  }
  CHECK(ev.len == strlen(data) && memcmp(ev.data, data, ev.len) == 0, "data \"%.*s\", expected \"%s\"",
        (int)ev.len, (const char *)ev.data, data);
}

/* Polls to SSE_EVENT_TERMINATED; then every poll is WS_ERR_CLOSED. */
static void drain_to_terminated(sse_client *c) {
  int i;
  sse_event ev;
  for (i = 0; i < 100; i++) {
    ev = next_sse(c);
    if (ev.kind == SSE_EVENT_TERMINATED) break;
  }
  CHECK(ev.kind == SSE_EVENT_TERMINATED, "never terminated");
  CHECK(ev.state == WS_STATE_CLOSED, "terminated in %s", state_name(ev.state));
  CHECK_FAILS(sse_poll_event(c, 0, &ev), WS_ERR_CLOSED);
}

static void url_of(char *out, size_t n, const char *base, const char *path) {
  int w = snprintf(out, n, "%s%s", base, path);
  CHECK(w > 0 && (size_t)w < n, "URL too long");
}

static void stream_resumes_with_last_event_id(const char *base) {
  char url[256];
  sse_client *c = NULL;
  sse_event ev;
  STAGE("stream");
  url_of(url, sizeof url, base, "/stream");
  CHECK_STATUS(sse_connect(url,
                           "{\"reconnect\": {\"initial_delay_ms\": 5000, \"jitter\": 0},"
                           " \"read_timeout_ms\": 10000, \"headers\": {\"X-Token\": \"one\"}}",
                           &c),
               WS_OK);
  ev = next_sse(c);
  CHECK(ev.kind == SSE_EVENT_STATE && ev.state == WS_STATE_CONNECTING, "first event");
  ev = next_sse(c);
  CHECK(ev.kind == SSE_EVENT_STATE && ev.state == WS_STATE_OPEN, "second event");
  ev = next_sse(c);
  CHECK(ev.kind == SSE_EVENT_OPEN, "third event %s", sse_event_name(ev.kind));
  CHECK(ev.data == NULL && ev.len == 0 && ev.type == NULL && ev.id == NULL, "OPEN carries nothing");
  expect_message(c, "tick", "1", "a\nb");
  expect_message(c, "message", "2", "h\xc3\xa9llo");

  /* The server ended the stream: retry: 500 replaced the 5 s delay. */
  CHECK_STATUS(sse_set_header(c, "X-Token", "two"), WS_OK);
  ev = next_not_state(c);
  CHECK(ev.kind == SSE_EVENT_RECONNECTING, "got %s", sse_event_name(ev.kind));
  CHECK(ev.attempt == 1 && ev.delay_ms == 500, "attempt %u in %llu ms", (unsigned)ev.attempt,
        (unsigned long long)ev.delay_ms);
  ev = next_not_state(c);
  CHECK(ev.kind == SSE_EVENT_OPEN, "got %s", sse_event_name(ev.kind));
  /* The server echoes what it got: Last-Event-ID and the new header. */
  expect_message(c, "message", "2", "resumed after 2 with two");

  STAGE("close");
  CHECK_STATUS(sse_close(c), WS_OK);
  CHECK_FAILS(sse_close(c), WS_ERR_CLOSED);
  drain_to_terminated(c);
  CHECK_FAILS(sse_set_header(c, "X-Token", "three"), WS_ERR_CLOSED);
  sse_free(c);
}

static void ends_without_retry(const char *base, const char *path, int error) {
  char url[256];
  sse_client *c = NULL;
  sse_event ev;
  int errors = 0, i;
  STAGE(path);
  url_of(url, sizeof url, base, path);
  CHECK_STATUS(sse_connect(url, "{\"reconnect\": {\"initial_delay_ms\": 10}}", &c), WS_OK);
  for (i = 0; i < 100; i++) {
    ev = next_sse(c);
    CHECK(ev.kind != SSE_EVENT_RECONNECTING && ev.kind != SSE_EVENT_OPEN, "%s: %s", path,
          sse_event_name(ev.kind));
    if (ev.kind == SSE_EVENT_ERROR) {
      errors++;
      CHECK(ev.error == error, "%s: error %d, expected %d", path, (int)ev.error, error);
      CHECK(ev.data != NULL && ev.data[ev.len] == '\0', "error text is NUL-terminated");
    }
    if (ev.kind == SSE_EVENT_TERMINATED) break;
  }
  CHECK(ev.kind == SSE_EVENT_TERMINATED, "%s: never terminated", path);
  CHECK(errors == (error == 0 ? 0 : 1), "%s: %d errors", path, errors);
  CHECK_FAILS(sse_poll_event(c, 0, &ev), WS_ERR_CLOSED);
  sse_free(c);
}

static void bad_input(const char *base) {
  char url[256];
  sse_client *c = NULL;
  sse_event ev;
  STAGE("bad input");
  url_of(url, sizeof url, base, "/stream");
  CHECK_FAILS(sse_connect(NULL, NULL, &c), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_connect(url, NULL, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_connect("ws://127.0.0.1:1/", NULL, &c), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_connect("not a url", NULL, &c), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_connect(url, "{\"ping_interval_ms\": 1000}", &c), WS_ERR_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "ping_interval_ms") != NULL, "names the key");
  CHECK_FAILS(sse_connect(url, "{\"method\": \"GET\", \"body\": \"x\"}", &c),
              WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_connect(url, "{\"nope\": 1}", &c), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_connect(url, "{\"allow_insecure\": false}", &c), WS_ERR_INVALID_ARGUMENT);
  CHECK(c == NULL, "out written on failure");
  CHECK_FAILS(sse_poll_event(NULL, 0, &ev), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_close(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_set_header(NULL, "a", "b"), WS_ERR_NULL_ARGUMENT);
  CHECK(sse_event_fd(NULL) == -1, "fd of NULL");
  sse_free(NULL);

  CHECK_STATUS(sse_connect(url, "{\"reconnect\": {\"initial_delay_ms\": 10}}", &c), WS_OK);
  CHECK_FAILS(sse_poll_event(c, -2, &ev), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_poll_event(c, 0, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_set_header(c, NULL, "x"), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sse_set_header(c, "bad name", "x"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_set_header(c, "X-Token", "line\nbreak"), WS_ERR_INVALID_ARGUMENT);
  CHECK(strstr(ws_last_error(), "line") == NULL, "the value is not echoed");
  CHECK_FAILS(sse_set_header(c, "Last-Event-ID", "5"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sse_set_header(c, "Content-Length", "5"), WS_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sse_set_header(c, "X-Token", NULL), WS_OK);
  CHECK(sse_event_fd(c) >= 0, "an event fd");
  CHECK_STATUS(sse_close(c), WS_OK);
  drain_to_terminated(c);
  sse_free(c);
}

int main(int argc, char **argv) {
  test_begin(90);
  CHECK(argc >= 2, "usage: sse BASE_URL");
  stream_resumes_with_last_event_id(argv[1]);
  ends_without_retry(argv[1], "/gone", 0);
  ends_without_retry(argv[1], "/forbidden", 403);
  ends_without_retry(argv[1], "/html", WS_ERROR_HANDSHAKE);
  bad_input(argv[1]);
  printf("sse: all passed\n");
  return 0;
}
