/*
 * The outgoing queue while the connection is down: a full queue refuses
 * (WS_ERR_QUEUE_FULL, nothing taken), ws_stats counts what waits, and a
 * close with messages still queued reports WS_ERROR_UNSENT before
 * WS_EVENT_TERMINATED. Also the byte limit and "drop_oldest".
 *
 * usage: queue_full ws://127.0.0.1:PORT/echo [ws://127.0.0.1:DEADPORT/]
 * argv[2] is a URL where nothing listens (default ws://127.0.0.1:1/).
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

static void check_queued(int line, ws_client *c, uint64_t messages, uint64_t bytes) {
  ws_client_stats st;
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  printf("  stats: queued %llu msgs %llu B, out %llu msgs, dropped %llu, reconnects %llu\n",
         (unsigned long long)st.queued_messages, (unsigned long long)st.queued_bytes,
         (unsigned long long)st.messages_out, (unsigned long long)st.dropped_messages,
         (unsigned long long)st.reconnects);
  if (st.queued_messages != messages || st.queued_bytes != bytes)
    fail_at(__FILE__, line, "ws_stats", "queued %llu messages / %llu bytes, expected %llu / %llu",
            (unsigned long long)st.queued_messages, (unsigned long long)st.queued_bytes,
            (unsigned long long)messages, (unsigned long long)bytes);
  if (st.messages_out != 0 || st.bytes_out != 0)
    fail_at(__FILE__, line, "ws_stats", "%llu messages handed to a socket that never opened",
            (unsigned long long)st.messages_out);
}

/*
 * ws_close, then polls to WS_EVENT_TERMINATED. Returns how many
 * WS_EVENT_ERROR events had `error_code`; fails on any event that needs
 * an open connection.
 */
static int close_and_drain(int line, ws_client *c, int32_t error_code) {
  int64_t deadline;
  int i, found = 0, terminated = 0;
  CHECK_STATUS(ws_close(c, 1000, NULL), WS_OK);
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0; i < 100 && !terminated; i++) {
    ws_event ev = next_event_at(__FILE__, line, c, deadline);
    print_event(&ev);
    switch (ev.kind) {
    case WS_EVENT_ERROR:
      CHECK(ev.data != NULL && ev.len > 0, "WS_EVENT_ERROR %d without a message", (int)ev.error);
      CHECK_NUL_TERMINATED(ev);
      if (ev.error == error_code) found++;
      break;
    case WS_EVENT_TERMINATED:
      terminated = 1;
      CHECK(ev.state == WS_STATE_CLOSED, "WS_EVENT_TERMINATED with state %s",
            state_name(ev.state));
      break;
    case WS_EVENT_OPEN:
    case WS_EVENT_TEXT:
    case WS_EVENT_BINARY:
      fail_at(__FILE__, line, "close_and_drain", "%s from a URL where nothing listens",
              event_name(ev.kind));
    default:
      break;
    }
  }
  if (!terminated)
    fail_at(__FILE__, line, "close_and_drain", "no WS_EVENT_TERMINATED within 100 events");
  CHECK_FAILS(ws_poll_event(c, 0, &(ws_event){0}), WS_ERR_CLOSED);
  return found;
}

/* Drains what has come so far (connect errors, reconnect schedule). */
static void drain_pending(ws_client *c) {
  int i;
  for (i = 0; i < 100; i++) {
    ws_event ev;
    ws_status s = ws_poll_event(c, 0, &ev);
    if (s == WS_TIMEOUT) return;
    CHECK(s == WS_OK, "ws_poll_event returned %s", status_name(s));
    print_event(&ev);
    CHECK(ev.kind != WS_EVENT_OPEN && ev.kind != WS_EVENT_TERMINATED,
          "%s from a URL where nothing listens", event_name(ev.kind));
  }
}

int main(int argc, char **argv) {
  const char *dead_url;
  ws_client *c = NULL;
  size_t live_before;
  int unsent;

  test_begin(55);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path [ws://127.0.0.1:DEADPORT/]\n",
            argv[0]);
    return 2;
  }
  dead_url = argc > 2 ? argv[2] : "ws://127.0.0.1:1/";
  live_before = ws_live_clients();

  STAGE("max_messages 3: the 4th ws_send is refused");
  CHECK_STATUS(ws_connect(dead_url, "{\"queue\": {\"max_messages\": 3}}", &c), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"one", 3), WS_OK);
  CHECK_STATUS(ws_send(c, WS_BINARY, (const uint8_t *)"two", 3), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"three", 5), WS_OK);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"four", 4), WS_ERR_QUEUE_FULL);
  CHECK_FAILS(ws_send(c, WS_BINARY, NULL, 0), WS_ERR_QUEUE_FULL);
  check_queued(__LINE__, c, 3, 11);
  /* Still refused, still 3, while the client retries in the background. */
  sleep_ms(300);
  drain_pending(c);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"five", 4), WS_ERR_QUEUE_FULL);
  check_queued(__LINE__, c, 3, 11);

  STAGE("close with 3 queued: WS_ERROR_UNSENT, then WS_EVENT_TERMINATED");
  unsent = close_and_drain(__LINE__, c, WS_ERROR_UNSENT);
  CHECK(unsent == 1, "%d WS_EVENT_ERROR with WS_ERROR_UNSENT before WS_EVENT_TERMINATED, "
        "expected 1", unsent);
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"late", 4), WS_ERR_CLOSED);
  ws_free(c);
  c = NULL;

  STAGE("max_bytes 10: a message that does not fit is refused");
  CHECK_STATUS(ws_connect(dead_url, "{\"queue\": {\"max_bytes\": 10}}", &c), WS_OK);
  CHECK_STATUS(ws_send(c, WS_BINARY, (const uint8_t *)"123456", 6), WS_OK);
  CHECK_FAILS(ws_send(c, WS_BINARY, (const uint8_t *)"12345", 5), WS_ERR_QUEUE_FULL);
  check_queued(__LINE__, c, 1, 6);
  CHECK_STATUS(ws_send(c, WS_BINARY, (const uint8_t *)"1234", 4), WS_OK);
  check_queued(__LINE__, c, 2, 10);
  CHECK_FAILS(ws_send(c, WS_BINARY, (const uint8_t *)"1", 1), WS_ERR_QUEUE_FULL);
  unsent = close_and_drain(__LINE__, c, WS_ERROR_UNSENT);
  CHECK(unsent == 1, "%d WS_ERROR_UNSENT errors, expected 1", unsent);
  ws_free(c);
  c = NULL;

  STAGE("overflow drop_oldest: nothing refused, the oldest dropped and reported");
  CHECK_STATUS(ws_connect(dead_url,
                          "{\"queue\": {\"max_messages\": 2, \"overflow\": \"drop_oldest\"}}", &c),
               WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"a", 1), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"bb", 2), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)"ccc", 3), WS_OK);
  check_queued(__LINE__, c, 2, 5);
  {
    ws_client_stats st;
    CHECK_STATUS(ws_stats(c, &st), WS_OK);
    CHECK(st.dropped_messages == 1, "dropped_messages %llu, expected 1",
          (unsigned long long)st.dropped_messages);
  }
  {
    /* The drop is reported as WS_ERROR_MESSAGE_DROPPED (before the end). */
    int dropped = close_and_drain(__LINE__, c, WS_ERROR_MESSAGE_DROPPED);
    CHECK(dropped >= 1, "no WS_EVENT_ERROR with WS_ERROR_MESSAGE_DROPPED");
  }
  ws_free(c);

  CHECK(ws_live_clients() == live_before, "ws_live_clients() is %zu after ws_free, expected %zu",
        ws_live_clients(), live_before);
  printf("queue_full: all checks passed\n");
  return 0;
}
