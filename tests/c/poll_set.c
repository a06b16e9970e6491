/*
 * One thread serves many clients through a ws_poll_set: every client is
 * reported by ws_poll_set_wait when it has events, disarmed until
 * ws_poll_set_rearm, and each gets its own echo back; ws_poll_set_wake
 * ends a wait with no token; ws_poll_set_remove before ws_free; bad
 * arguments are refused with a status, never a crash.
 *
 * usage: poll_set ws://127.0.0.1:PORT/echo
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define CLIENTS 32
#define OPTIONS NULL

struct member {
  ws_client *client;
  int opened;
  int echoed;
  int terminated;
  int room_notices;
};

/* Drains one reported client with timeout 0 until WS_TIMEOUT or TERMINATED. */
static void drain(struct member *m, int index) {
  int n;
  for (n = 0; n < 100000; n++) {
    ws_event ev;
    ws_status st = ws_poll_event(m->client, 0, &ev);
    if (st == WS_TIMEOUT) return;
    CHECK(st == WS_OK, "client %d: ws_poll_event returned %s", index, status_name(st));
    switch (ev.kind) {
    case WS_EVENT_OPEN: {
      char text[32];
      int len = snprintf(text, sizeof text, "poll %d", index);
      m->opened = 1;
      CHECK_STATUS(ws_send(m->client, WS_TEXT, (const uint8_t *)text, (size_t)len), WS_OK);
      break;
    }
    case WS_EVENT_TEXT: {
      char want[32];
      int len = snprintf(want, sizeof want, "poll %d", index);
      CHECK(ev.len == (size_t)len && memcmp(ev.data, want, (size_t)len) == 0,
            "client %d got \"%.*s\", expected \"%s\"", index, (int)ev.len,
            (const char *)ev.data, want);
      m->echoed = 1;
      break;
    }
    case WS_EVENT_TERMINATED: m->terminated = 1; return;
    case WS_EVENT_STATE:
    case WS_EVENT_CLOSED: break;
    default: print_event(&ev); fail_at(__FILE__, __LINE__, "drain", "unexpected event");
    }
  }
  fail_at(__FILE__, __LINE__, "drain", "ws_poll_event never returned WS_TIMEOUT");
}

/* Waits and drains until every member satisfies `done`, bounded in rounds and time. */
static void serve(ws_poll_set *set, struct member *members, int (*done)(const struct member *),
                  const char *what) {
  int64_t deadline = now_ms() + EVENT_WAIT_MS;
  int round;
  for (round = 0; round < 100000 && now_ms() < deadline; round++) {
    uint64_t tokens[8];
    size_t count = 0;
    size_t i;
    int all = 1;
    int k;
    for (k = 0; k < CLIENTS; k++) all = all && done(&members[k]);
    if (all) return;
    ws_status st = ws_poll_set_wait(set, 100, tokens, 8, &count);
    if (st == WS_TIMEOUT) continue;
    CHECK(st == WS_OK, "ws_poll_set_wait returned %s", status_name(st));
    for (i = 0; i < count; i++) {
      uint64_t token = tokens[i] & ~WS_POLL_SET_ROOM;
      CHECK(token < CLIENTS, "token %llu was never given", (unsigned long long)tokens[i]);
      struct member *m = &members[token];
      if (tokens[i] & WS_POLL_SET_ROOM) {
        m->room_notices++;
        continue;
      }
      drain(m, (int)token);
      if (!m->terminated) CHECK_STATUS(ws_poll_set_rearm(set, m->client), WS_OK);
    }
  }
  fail_at(__FILE__, __LINE__, "serve", "not every client reached: %s", what);
}

static int echoed(const struct member *m) { return m->echoed; }
/* The member that asked for a room notice. */
static const struct member *watched;
static int room_noticed(const struct member *m) { return m != watched || m->room_notices > 0; }
static int terminated(const struct member *m) { return m->terminated; }

int main(int argc, char **argv) {
  struct member members[CLIENTS];
  ws_poll_set *set = NULL;
  uint64_t tokens[4];
  size_t count = 99;
  int i;
  test_begin(60);
  CHECK(argc == 2, "usage: %s ws://127.0.0.1:PORT/echo", argv[0]);
  memset(members, 0, sizeof members);

  STAGE("bad arguments");
  CHECK_FAILS(ws_poll_set_new(NULL), WS_ERR_NULL_ARGUMENT);
  CHECK_STATUS(ws_poll_set_new(&set), WS_OK);
  CHECK(set != NULL, "ws_poll_set_new gave NULL");
  CHECK_FAILS(ws_poll_set_add(NULL, NULL, 0), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_set_add(set, NULL, 0), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_set_wait(set, -2, tokens, 4, &count), WS_ERR_INVALID_ARGUMENT);
  CHECK_FAILS(ws_poll_set_wait(set, 0, NULL, 4, &count), WS_ERR_NULL_ARGUMENT);
  CHECK_FAILS(ws_poll_set_wait(set, 0, tokens, 4, NULL), WS_ERR_NULL_ARGUMENT);
  CHECK(count == 99, "a failed wait wrote its out-parameter");
  CHECK_STATUS(ws_poll_set_wait(set, 0, tokens, 4, &count), WS_TIMEOUT);
  CHECK_FAILS(ws_poll_set_wake(NULL), WS_ERR_NULL_ARGUMENT);
  ws_poll_set_free(NULL);

  STAGE("wake ends a wait with no token");
  CHECK_STATUS(ws_poll_set_wake(set), WS_OK);
  CHECK_STATUS(ws_poll_set_wait(set, -1, tokens, 4, &count), WS_OK);
  CHECK(count == 0, "a woken wait reported %zu tokens", count);

  STAGE("connect and add");
  for (i = 0; i < CLIENTS; i++) {
    CHECK_STATUS(ws_connect(argv[1], OPTIONS, &members[i].client), WS_OK);
    CHECK_STATUS(ws_poll_set_add(set, members[i].client, (uint64_t)i), WS_OK);
  }
  CHECK_FAILS(ws_poll_set_add(set, members[0].client, 0), WS_ERR_INVALID_ARGUMENT);

  STAGE("every client opens and gets its echo, served by this thread alone");
  serve(set, members, echoed, "echoed");

  STAGE("a room notice once messages leave the queue");
  {
    const char *again = "poll 0";
    CHECK_FAILS(ws_poll_set_watch_room(set, NULL), WS_ERR_NULL_ARGUMENT);
    watched = &members[0];
    CHECK_STATUS(ws_poll_set_watch_room(set, members[0].client), WS_OK);
    CHECK_STATUS(ws_send(members[0].client, WS_TEXT, (const uint8_t *)again, strlen(again)), WS_OK);
    serve(set, members, room_noticed, "room noticed");
    CHECK(members[0].room_notices == 1, "%d room notices, expected 1", members[0].room_notices);
  }

  STAGE("close all and drain to TERMINATED");
  for (i = 0; i < CLIENTS; i++) CHECK_STATUS(ws_close(members[i].client, 1000, "bye"), WS_OK);
  serve(set, members, terminated, "terminated");

  STAGE("remove, then free");
  for (i = 0; i < CLIENTS; i++) {
    CHECK_STATUS(ws_poll_set_remove(set, members[i].client), WS_OK);
    CHECK_FAILS(ws_poll_set_remove(set, members[i].client), WS_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(ws_poll_set_rearm(set, members[i].client), WS_ERR_INVALID_ARGUMENT);
    ws_free(members[i].client);
  }
  CHECK_STATUS(ws_poll_set_wait(set, 0, tokens, 4, &count), WS_TIMEOUT);
  ws_poll_set_free(set);
  printf("poll_set: ok\n");
  return 0;
}
