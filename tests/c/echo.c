/*
 * Echo round trip through the C ABI: connect, open, text and binary
 * messages (1 MiB and zero-length included), close with 1000 "bye",
 * drain to WS_EVENT_TERMINATED, then the calls a closed client refuses.
 *
 * usage: echo ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define MIB ((size_t)1024 * 1024)

/* The next event must be the echo of one message. */
static void expect_echo(int line, ws_client *c, ws_event_kind kind, const uint8_t *want,
                        size_t len) {
  ws_event ev = next_event_at(__FILE__, line, c, now_ms() + EVENT_WAIT_MS);
  if (ev.kind != kind) {
    print_event(&ev);
    fail_at(__FILE__, line, "expect_echo", "got %s, expected %s of %zu bytes",
            event_name(ev.kind), event_name(kind), len);
  }
  if (ev.len != len)
    fail_at(__FILE__, line, "expect_echo", "%s of %zu bytes, expected %zu", event_name(kind),
            ev.len, len);
  if (len > 0 && (ev.data == NULL || memcmp(ev.data, want, len) != 0))
    fail_at(__FILE__, line, "expect_echo", "%s of %zu bytes: payload differs from what was sent",
            event_name(kind), len);
  CHECK(ev.state == WS_STATE_OPEN, "state with a message is %s, expected WS_STATE_OPEN",
        state_name(ev.state));
}

int main(int argc, char **argv) {
  const char *url;
  ws_client *c = NULL;
  ws_event ev;
  ws_event sentinel;
  ws_client_stats st;
  size_t live_before;
  int states[16];
  int n_states = 0;
  int i;
  int opened = 0;
  int64_t deadline;
  static const char text1[] = "hello, tether \xe2\x9c\x93"; /* U+2713 */
  static const char text2[] = {'a', '\0', 'b'};            /* U+0000 is valid UTF-8 */
  uint8_t bin256[256];
  uint8_t *big;
  uint64_t total_bytes;

  test_begin(50);
  if (argc < 2) {
    fprintf(stderr, "usage: %s ws://127.0.0.1:PORT/path\n", argv[0]);
    return 2;
  }
  url = argv[1];
  live_before = ws_live_clients();

  STAGE("connect");
  CHECK_STATUS(ws_connect(url, NULL, &c), WS_OK);
  CHECK(c != NULL, "ws_connect returned WS_OK but *out is NULL");
  CHECK(ws_live_clients() == live_before + 1, "ws_live_clients() = %zu, expected %zu",
        ws_live_clients(), live_before + 1);

  STAGE("wait for WS_EVENT_OPEN");
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0; i < 16 && !opened; i++) {
    ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    if (i == 0)
      CHECK(ev.kind == WS_EVENT_STATE && ev.state == WS_STATE_CONNECTING,
            "first event is %s (%s), expected WS_EVENT_STATE (WS_STATE_CONNECTING)",
            event_name(ev.kind), state_name(ev.state));
    switch (ev.kind) {
    case WS_EVENT_STATE:
      states[n_states++] = (int)ev.state;
      break;
    case WS_EVENT_OPEN:
      opened = 1;
      CHECK(ev.state == WS_STATE_OPEN, "WS_EVENT_OPEN with state %s", state_name(ev.state));
      /* No subprotocol was offered: "len 0 and data NULL when none". */
      CHECK(ev.len == 0 && ev.data == NULL,
            "WS_EVENT_OPEN without subprotocol: len %zu data %p, expected 0 and NULL", ev.len,
            (const void *)ev.data);
      break;
    default:
      fail_at(__FILE__, __LINE__, "wait for open", "unexpected %s before WS_EVENT_OPEN",
              event_name(ev.kind));
    }
  }
  CHECK(opened, "no WS_EVENT_OPEN within 16 events");
  CHECK(n_states == 2 && states[0] == WS_STATE_CONNECTING && states[1] == WS_STATE_OPEN,
        "states before WS_EVENT_OPEN: %d of them (first %s), expected CONNECTING then OPEN",
        n_states, n_states > 0 ? state_name(states[0]) : "-");

  STAGE("poll with timeout 0 while nothing is pending");
  memset(&sentinel, 0xA5, sizeof sentinel);
  ev = sentinel;
  CHECK_STATUS(ws_poll_event(c, 0, &ev), WS_TIMEOUT);
  CHECK(memcmp(&ev, &sentinel, sizeof ev) == 0, "WS_TIMEOUT wrote to *out");
  CHECK_STATUS(ws_poll_event(c, 20, &ev), WS_TIMEOUT);
  CHECK(memcmp(&ev, &sentinel, sizeof ev) == 0, "WS_TIMEOUT wrote to *out");

  STAGE("send text and binary");
  for (i = 0; i < 256; i++) bin256[i] = (uint8_t)i;
  big = malloc(MIB);
  CHECK(big != NULL, "out of memory");
  for (i = 0; i < (int)MIB; i++) big[i] = (uint8_t)((i * 7 + (i >> 12)) % 251);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)text1, strlen(text1)), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, (const uint8_t *)text2, sizeof text2), WS_OK);
  CHECK_STATUS(ws_send(c, WS_TEXT, NULL, 0), WS_OK);
  CHECK_STATUS(ws_send(c, WS_BINARY, bin256, sizeof bin256), WS_OK);
  CHECK_STATUS(ws_send(c, WS_BINARY, big, MIB), WS_OK);
  CHECK_STATUS(ws_send(c, WS_BINARY, NULL, 0), WS_OK);
  total_bytes = strlen(text1) + sizeof text2 + sizeof bin256 + MIB;

  STAGE("receive the echoes in order");
  expect_echo(__LINE__, c, WS_EVENT_TEXT, (const uint8_t *)text1, strlen(text1));
  expect_echo(__LINE__, c, WS_EVENT_TEXT, (const uint8_t *)text2, sizeof text2);
  expect_echo(__LINE__, c, WS_EVENT_TEXT, NULL, 0);
  expect_echo(__LINE__, c, WS_EVENT_BINARY, bin256, sizeof bin256);
  expect_echo(__LINE__, c, WS_EVENT_BINARY, big, MIB);
  expect_echo(__LINE__, c, WS_EVENT_BINARY, NULL, 0);

  STAGE("ws_stats while open");
  memset(&st, 0xA5, sizeof st);
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  printf("  stats: queued %llu/%llu B, in %llu msgs/%llu B, out %llu msgs/%llu B, "
         "unpolled %llu B, reconnects %llu\n",
         (unsigned long long)st.queued_messages, (unsigned long long)st.queued_bytes,
         (unsigned long long)st.messages_in, (unsigned long long)st.bytes_in,
         (unsigned long long)st.messages_out, (unsigned long long)st.bytes_out,
         (unsigned long long)st.unpolled_bytes, (unsigned long long)st.reconnects);
  CHECK(st.messages_out == 6, "messages_out %llu, expected 6",
        (unsigned long long)st.messages_out);
  CHECK(st.messages_in == 6, "messages_in %llu, expected 6", (unsigned long long)st.messages_in);
  CHECK(st.bytes_out == total_bytes, "bytes_out %llu, expected %llu",
        (unsigned long long)st.bytes_out, (unsigned long long)total_bytes);
  CHECK(st.bytes_in == total_bytes, "bytes_in %llu, expected %llu",
        (unsigned long long)st.bytes_in, (unsigned long long)total_bytes);
  CHECK(st.queued_messages == 0 && st.queued_bytes == 0, "queue not empty: %llu msgs %llu B",
        (unsigned long long)st.queued_messages, (unsigned long long)st.queued_bytes);
  CHECK(st.unpolled_bytes == 0, "unpolled_bytes %llu after polling everything",
        (unsigned long long)st.unpolled_bytes);
  CHECK(st.reconnects == 0 && st.dropped_messages == 0, "reconnects %llu dropped %llu",
        (unsigned long long)st.reconnects, (unsigned long long)st.dropped_messages);
  free(big);

  STAGE("close 1000 \"bye\" and drain to WS_EVENT_TERMINATED");
  CHECK_STATUS(ws_close(c, 1000, "bye"), WS_OK);
  {
    int terminated = 0, closed_events = 0;
    n_states = 0;
    deadline = now_ms() + EVENT_WAIT_MS;
    for (i = 0; i < 16 && !terminated; i++) {
      ev = NEXT_EVENT(c, deadline);
      print_event(&ev);
      switch (ev.kind) {
      case WS_EVENT_STATE:
        states[n_states++] = (int)ev.state;
        break;
      case WS_EVENT_CLOSED:
        closed_events++;
        CHECK(ev.close_code == 1000, "WS_EVENT_CLOSED close_code %u, expected 1000",
              (unsigned)ev.close_code);
        CHECK(ev.len == 3 && ev.data != NULL && memcmp(ev.data, "bye", 3) == 0,
              "WS_EVENT_CLOSED reason \"%.*s\" (len %zu), expected \"bye\"", (int)ev.len,
              ev.data ? (const char *)ev.data : "", ev.len);
        CHECK_NUL_TERMINATED(ev);
        break;
      case WS_EVENT_TERMINATED:
        terminated = 1;
        CHECK(ev.state == WS_STATE_CLOSED, "WS_EVENT_TERMINATED with state %s",
              state_name(ev.state));
        break;
      default:
        fail_at(__FILE__, __LINE__, "close", "unexpected %s after ws_close of an open client",
                event_name(ev.kind));
      }
    }
    CHECK(terminated, "no WS_EVENT_TERMINATED within 16 events after ws_close");
    CHECK(closed_events == 1, "%d WS_EVENT_CLOSED events, expected 1", closed_events);
    CHECK(n_states == 2 && states[0] == WS_STATE_CLOSING && states[1] == WS_STATE_CLOSED,
          "states after ws_close: %d of them (first %s), expected CLOSING then CLOSED",
          n_states, n_states > 0 ? state_name(states[0]) : "-");
  }

  STAGE("calls on a terminated client");
  ev = sentinel;
  CHECK_FAILS(ws_poll_event(c, 0, &ev), WS_ERR_CLOSED);
  CHECK(memcmp(&ev, &sentinel, sizeof ev) == 0, "failed ws_poll_event wrote to *out");
  /* Must not block: the client has terminated. */
  CHECK_FAILS(ws_poll_event(c, -1, &ev), WS_ERR_CLOSED);
  CHECK_FAILS(ws_poll_event(c, 1000, &ev), WS_ERR_CLOSED);
  CHECK(memcmp(&ev, &sentinel, sizeof ev) == 0, "failed ws_poll_event wrote to *out");
  CHECK_FAILS(ws_send(c, WS_TEXT, (const uint8_t *)"late", 4), WS_ERR_CLOSED);
  CHECK_FAILS(ws_send(c, WS_BINARY, NULL, 0), WS_ERR_CLOSED);
  CHECK_FAILS(ws_close(c, 1000, NULL), WS_ERR_CLOSED);
  memset(&st, 0xA5, sizeof st);
  CHECK_STATUS(ws_stats(c, &st), WS_OK);
  CHECK(st.messages_in == 6 && st.messages_out == 6,
        "stats after close: messages_in %llu messages_out %llu, expected 6 and 6",
        (unsigned long long)st.messages_in, (unsigned long long)st.messages_out);
  CHECK(st.queued_messages == 0, "queued_messages %llu after a clean close",
        (unsigned long long)st.queued_messages);

  STAGE("free");
  ws_free(c);
  CHECK(ws_live_clients() == live_before, "ws_live_clients() = %zu after ws_free, expected %zu",
        ws_live_clients(), live_before);
  STAGE("WS_EVENT_OPEN carries the negotiated subprotocol");
  CHECK_STATUS(ws_connect(url, "{\"subprotocols\": [\"chat.v2\", \"chat.v1\"]}", &c), WS_OK);
  deadline = now_ms() + EVENT_WAIT_MS;
  for (i = 0, opened = 0; i < 16 && !opened; i++) {
    ev = NEXT_EVENT(c, deadline);
    print_event(&ev);
    CHECK(ev.kind == WS_EVENT_STATE || ev.kind == WS_EVENT_OPEN, "unexpected %s before open",
          event_name(ev.kind));
    opened = ev.kind == WS_EVENT_OPEN;
  }
  CHECK(opened, "no WS_EVENT_OPEN within 16 events");
  /* The test server picks the first subprotocol offered. */
  CHECK(ev.len == 7 && ev.data != NULL && memcmp(ev.data, "chat.v2", 7) == 0,
        "WS_EVENT_OPEN subprotocol \"%.*s\" (len %zu), expected \"chat.v2\"", (int)ev.len,
        ev.data ? (const char *)ev.data : "", ev.len);
  CHECK_NUL_TERMINATED(ev);
  ws_free(c); /* open and never closed: closed politely in the background */
  CHECK(ws_live_clients() == live_before, "ws_live_clients() = %zu after ws_free, expected %zu",
        ws_live_clients(), live_before);

  printf("echo: all checks passed\n");
  return 0;
}
