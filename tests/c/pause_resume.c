/*
 * The app-lifecycle calls, as the header describes them:
 *   ws_pause:     closes politely (1001), no new connection until
 *                 ws_resume; ws_send still queues; state RECONNECTING,
 *                 no WS_EVENT_RECONNECTING.
 *   ws_resume:    connects now; the queued messages go out, in order.
 *   ws_reconnect: a fresh connection now, queued messages kept.
 *   ws_network_changed(c, 1) on an open connection: nothing breaks.
 *
 * usage: pause_resume ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

struct tally {
  int opens;
  int closed;
  uint16_t close_code;
  int reconnecting_events;
  int last_state;
  int messages;
};

static void note(struct tally *t, const ws_event *ev) {
  print_event(ev);
  t->last_state = (int)ev->state;
  switch (ev->kind) {
  case WS_EVENT_OPEN: t->opens++; break;
  case WS_EVENT_CLOSED:
    t->closed++;
    t->close_code = ev->close_code;
    break;
  case WS_EVENT_RECONNECTING: t->reconnecting_events++; break;
  case WS_EVENT_TEXT: t->messages++; break;
  case WS_EVENT_ERROR:
    /* A polite close and reopen against a healthy server: no errors. */
    fail_at(__FILE__, __LINE__, "events", "unexpected WS_EVENT_ERROR %d \"%.*s\"", (int)ev->error,
            (int)ev->len, ev->data ? (const char *)ev->data : "");
  case WS_EVENT_TERMINATED:
    fail_at(__FILE__, __LINE__, "events", "unexpected WS_EVENT_TERMINATED");
  default: break;
  }
}

/* Polls until `kind`; returns that event (its data valid until the next poll). */
static ws_event poll_until(int line, ws_client *c, struct tally *t, ws_event_kind kind) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int i;
  for (i = 0; i < 100; i++) {
    ws_event ev = next_event_at(__FILE__, line, c, deadline);
    note(t, &ev);
    if (ev.kind == kind) return ev;
  }
  fail_at(__FILE__, line, "poll_until", "no %s within 100 events", event_name(kind));
}

/* Polls for `ms`: everything that comes is tallied. */
static void poll_for(ws_client *c, struct tally *t, int ms) {
  int64_t end = now_ms() + ms;
  int i;
  for (i = 0; i < 1000; i++) {
    ws_event ev;
    int64_t left = end - now_ms();
    ws_status s;
    if (left <= 0) return;
    s = ws_poll_event(c, (int32_t)left, &ev);
    if (s == WS_TIMEOUT) return;
    CHECK(s == WS_OK, "ws_poll_event returned %s", status_name(s));
    note(t, &ev);
  }
}

static void expect_text(int line, ws_client *c, struct tally *t, const char *want) {
  ws_event ev = poll_until(line, c, t, WS_EVENT_TEXT);
  if (ev.len != strlen(want) || memcmp(ev.data, want, ev.len) != 0)
    fail_at(__FILE__, line, "expect_text", "got \"%.*s\", expected \"%s\"", (int)ev.len,
            (const char *)ev.data, want);
}

static uint64_t queued(ws_client *c) {
  ws_client_stats st;
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  return st.queued_messages;
}

int main(int argc, char **argv) {
  ws_client *c = NULL;
  struct tally t;

  test_begin(55);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path\n", argv[0]);
    return 2;
  }
  memset(&t, 0, sizeof t);

  STAGE("open");
  CHECK_STATUS(ws_connect(argv[1], NULL, &c), WS_OK);
  poll_until(__LINE__, c, &t, WS_EVENT_OPEN);

  STAGE("ws_network_changed(c, 1) while open keeps the connection");
  CHECK_STATUS(ws_network_changed(c, 1), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"still here", 10), WS_OK);
  expect_text(__LINE__, c, &t, "still here");
  CHECK(t.opens == 1 && t.closed == 0, "the connection was replaced (opens %d, closed %d)",
        t.opens, t.closed);

  STAGE("ws_pause: closed with 1001, no reconnection, sends queue");
  CHECK_STATUS(ws_pause(c), WS_OK);
  poll_until(__LINE__, c, &t, WS_EVENT_CLOSED);
  CHECK(t.close_code == 1001, "close code %u after ws_pause, expected 1001",
        (unsigned)t.close_code);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"queued 1", 8), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"queued 2", 8), WS_OK);
  poll_for(c, &t, 1500);
  CHECK(t.opens == 1, "a new connection opened while paused");
  CHECK(t.reconnecting_events == 0, "%d WS_EVENT_RECONNECTING while paused",
        t.reconnecting_events);
  CHECK(t.last_state == WS_STATE_RECONNECTING, "state %s while paused, expected %s",
        state_name(t.last_state), state_name(WS_STATE_RECONNECTING));
  CHECK(queued(c) == 2, "%llu queued while paused, expected 2", (unsigned long long)queued(c));

  STAGE("ws_resume: opens, the queue goes out in order");
  CHECK_STATUS(ws_resume(c), WS_OK);
  poll_until(__LINE__, c, &t, WS_EVENT_OPEN);
  CHECK(t.opens == 2, "%d opens, expected 2", t.opens);
  expect_text(__LINE__, c, &t, "queued 1");
  expect_text(__LINE__, c, &t, "queued 2");
  CHECK(queued(c) == 0, "%llu still queued after the resume", (unsigned long long)queued(c));

  STAGE("ws_reconnect: a fresh connection, messages still flow");
  CHECK_STATUS(ws_reconnect(c), WS_OK);
  poll_until(__LINE__, c, &t, WS_EVENT_OPEN);
  CHECK(t.opens == 3, "%d opens, expected 3", t.opens);
  CHECK(t.reconnecting_events == 0, "ws_reconnect went through a backoff (%d)",
        t.reconnecting_events);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"after reconnect", 15), WS_OK);
  expect_text(__LINE__, c, &t, "after reconnect");

  STAGE("ws_flush without manual flush does nothing");
  CHECK_STATUS(ws_flush(c), WS_OK);

  STAGE("close");
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  {
    int64_t deadline = now_ms() + EVENT_WAIT_MS;
    int i;
    ws_event ev;
    for (i = 0; i < 100; i++) {
      ev = NEXT_EVENT(c, deadline);
      print_event(&ev);
      if (ev.kind == WS_EVENT_TERMINATED) break;
    }
    CHECK(ev.kind == WS_EVENT_TERMINATED, "no WS_EVENT_TERMINATED within 100 events");
  }
  ws_free(c);
  printf("pause_resume: all checks passed\n");
  return 0;
}
