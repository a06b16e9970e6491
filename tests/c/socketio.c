/*
 * Socket.IO through the C ABI (sio_*), against the npm socket.io server of
 * tests/interop/socketio_server.js: emits before the namespace is
 * connected, acks both ways, binary attachments, a refused namespace,
 * bad input, and the close, on the transports given.
 *
 * usage: socketio http://127.0.0.1:PORT TRANSPORTS_JSON
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

static const char *sio_kind_name(int k) {
  switch (k) {
  case SIO_EVENT_STATE: return "SIO_EVENT_STATE";
  case SIO_EVENT_CONNECT: return "SIO_EVENT_CONNECT";
  case SIO_EVENT_CONNECT_ERROR: return "SIO_EVENT_CONNECT_ERROR";
  case SIO_EVENT_DISCONNECT: return "SIO_EVENT_DISCONNECT";
  case SIO_EVENT_EVENT: return "SIO_EVENT_EVENT";
  case SIO_EVENT_ACK: return "SIO_EVENT_ACK";
  case SIO_EVENT_RECONNECTING: return "SIO_EVENT_RECONNECTING";
  case SIO_EVENT_ERROR: return "SIO_EVENT_ERROR";
  case SIO_EVENT_TERMINATED: return "SIO_EVENT_TERMINATED";
  default: return "(unknown sio_event_kind)";
  }
}

static void print_sio(const sio_event *ev) {
  printf("  event %s nsp=%s name=%s data=%.*s ack=%llu error=%d\n", sio_kind_name(ev->kind),
         ev->nsp ? ev->nsp : "-", ev->name ? ev->name : "-", (int)ev->len,
         ev->data ? (const char *)ev->data : "", (unsigned long long)ev->ack_id, ev->error);
}

/* Polls until an event of `kind` (and event name `name`, if not NULL). */
static sio_event wait_for(int line, sio_client *c, sio_event_kind kind, const char *name) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  sio_event ev;
  while (now_ms() < deadline) {
    int s = sio_poll_event(c, 200, &ev);
    if (s == WS_TIMEOUT) continue;
    if (s != WS_OK) fail_at(__FILE__, line, "sio_poll_event", "returned %s", status_name(s));
    print_sio(&ev);
    if (ev.kind == SIO_EVENT_TERMINATED && kind != SIO_EVENT_TERMINATED)
      fail_at(__FILE__, line, "wait_for", "terminated while waiting for %s", sio_kind_name(kind));
    if (ev.kind == kind && (name == NULL || (ev.name && strcmp(ev.name, name) == 0))) return ev;
  }
  fail_at(__FILE__, line, "wait_for", "no %s %s within %d ms", sio_kind_name(kind),
          name ? name : "", EVENT_WAIT_MS);
  return ev;
}

static void expect_data(int line, const sio_event *ev, const char *want) {
  if (ev->data == NULL || ev->len != strlen(want) || memcmp(ev->data, want, ev->len) != 0)
    fail_at(__FILE__, line, "expect_data", "data %.*s, expected %s", (int)ev->len,
            ev->data ? (const char *)ev->data : "(NULL)", want);
  CHECK(ev->data[ev->len] == '\0', "data is NUL-terminated");
}

int main(int argc, char **argv) {
  char options[512];
  sio_client *c = NULL;
  sio_event ev;
  uint64_t ack_id = 0;
  const uint8_t blob[3] = {7, 0, 9};
  const uint8_t *datas[1] = {blob};
  size_t lens[1] = {sizeof blob};
  const uint8_t *got = NULL;
  size_t got_len = 0;
  uint64_t question;

  test_begin(90);
  CHECK(argc == 3, "usage: socketio URL TRANSPORTS_JSON");
  snprintf(options, sizeof options,
           "{\"allow_insecure\":true,\"transports\":%s,\"auth\":{\"user\":\"c\"},"
           "\"ack_timeout_ms\":5000}",
           argv[2]);

  STAGE("bad input");
  CHECK_FAILS(sio_connect(NULL, NULL, &c), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sio_connect(argv[1], options, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(sio_connect("ws://127.0.0.1:1", options, &c), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_connect(argv[1], "{\"ping_interval_ms\":5}", &c), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_connect(argv[1], "{\"transports\":[]}", &c), WS_ERR_INVALID_ARGUMENT);
  CHECK(c == NULL, "out untouched on failure");
  CHECK_FAILS(sio_emit(NULL, "/", "echo", "[]", NULL), WS_ERR_NULL_ARGUMENT);

  STAGE("connect, and an emit before the namespace is connected");
  CHECK_STATUS(sio_connect(argv[1], options, &c), WS_OK);
  CHECK_STATUS(sio_emit(c, "/", "echo", "[\"from C\",1]", NULL), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_CONNECT, NULL);
  CHECK(ev.nsp && strcmp(ev.nsp, "/") == 0, "CONNECT of /");
  CHECK(ev.recovered == 0, "nothing to recover on a first connection");
  ev = wait_for(__LINE__, c, SIO_EVENT_EVENT, "echo");
  expect_data(__LINE__, &ev, "[\"from C\",1]");
  CHECK(ev.ack_id == 0, "no ack asked");

  STAGE("an ack we ask for");
  CHECK_STATUS(sio_emit(c, "/", "ack-me", "[\"a\",{\"b\":[true]}]", &ack_id), WS_OK);
  CHECK(ack_id > 0, "an ack id");
  ev = wait_for(__LINE__, c, SIO_EVENT_ACK, NULL);
  CHECK(ev.ack_id == ack_id, "the ack of our emit");
  CHECK(ev.error == 0, "answered");
  expect_data(__LINE__, &ev, "[\"a\",{\"b\":[true]}]");

  STAGE("an ack the server asks for");
  CHECK_STATUS(sio_emit(c, "/", "ask", "[9]", NULL), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_EVENT, "question");
  CHECK(ev.ack_id > 0, "the server wants an answer");
  question = ev.ack_id;
  CHECK_STATUS(sio_ack(c, "/", question, "[\"yes\"]"), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_EVENT, "answered");
  expect_data(__LINE__, &ev, "[\"yes\"]");

  STAGE("binary attachments");
  CHECK_STATUS(sio_emit_binary(c, "/", "binary-echo", "[\"f\"]", datas, lens, 1, NULL), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_EVENT, "binary");
  CHECK(ev.attachments == 1, "one attachment, got %zu", ev.attachments);
  CHECK_STATUS(sio_attachment(c, 0, &got, &got_len), WS_OK);
  CHECK(got_len == sizeof blob && memcmp(got, blob, sizeof blob) == 0, "attachment bytes");
  CHECK_FAILS(sio_attachment(c, 1, &got, &got_len), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_emit_binary(c, "/", "x", "[]", NULL, lens, 1, NULL), WS_ERR_NULL_ARGUMENT);

  STAGE("a refused namespace, then a good token");
  CHECK_STATUS(sio_join(c, "/admin", "{\"token\":\"nope\"}"), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_CONNECT_ERROR, NULL);
  CHECK(ev.nsp && strcmp(ev.nsp, "/admin") == 0, "CONNECT_ERROR of /admin");
  CHECK(ev.data && strstr((const char *)ev.data, "bad token") != NULL, "the server's message");
  CHECK_FAILS(sio_emit(c, "/admin", "echo", "[]", NULL), WS_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sio_join(c, "/admin", "{\"token\":\"secret\"}"), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_CONNECT, NULL);
  CHECK(ev.nsp && strcmp(ev.nsp, "/admin") == 0, "CONNECT of /admin");
  CHECK_STATUS(sio_leave(c, "/admin"), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_DISCONNECT, NULL);
  expect_data(__LINE__, &ev, "io client disconnect");

  STAGE("bad input on an open client");
  CHECK_FAILS(sio_emit(c, "/", "disconnect", "[]", NULL), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_emit(c, "/", "echo", "{\"not\":\"an array\"}", NULL), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_emit(c, "nope", "echo", "[]", NULL), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_join(c, "/x", "[1]"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_ack(c, "/", 0, "[]"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_leave(c, "/never"), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(sio_poll_event(c, -2, &ev), WS_ERR_INVALID_ARGUMENT);

  STAGE("close: acks still awaited fail, then TERMINATED");
  CHECK_STATUS(sio_emit(c, "/", "void", "[]", &ack_id), WS_OK);
  CHECK_STATUS(sio_close(c), WS_OK);
  ev = wait_for(__LINE__, c, SIO_EVENT_TERMINATED, NULL);
  CHECK(ev.state == WS_STATE_CLOSED, "closed at the end, got %s", state_name(ev.state));
  CHECK_FAILS(sio_poll_event(c, 0, &ev), WS_ERR_CLOSED);
  CHECK_FAILS(sio_emit(c, "/", "echo", "[]", NULL), WS_ERR_CLOSED);
  sio_free(c);
  sio_free(NULL);
  printf("socketio: all checks passed\n");
  return 0;
}
