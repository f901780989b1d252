// loom's CNI plugin, the fast client (scripts/setup builds it into .cache/bin/loom-cni; install that as
// `loom` in the runtime's CNI bin dir). It is only a pipe: the invocation goes to the loom daemon whole
// (POST /loom/cni/exec over its unix socket: stdin as the body, the CNI_* variables as Cni-* headers) and
// the daemon's answer (the plugin's stdout, its exit code in the Cni-Exit header) comes back out. All of
// the plugin's logic (versions, results, errors, prevResult chaining) is the daemon's, in
// src/cni/plugin.ts, shared with the Node client bin/loom-cni. Written in C because a runtime runs the
// plugin once per ADD and DEL and Node's start alone costs more than the daemon's whole attach.
//
// The client itself answers only VERSION (no daemon needed) and a daemon that cannot be reached (CNI
// error 11, "try again later"). The socket is the config's "socket", else $LOOM_SOCKET, else
// /run/loom/loom.sock.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_INPUT (64 << 20)

static const char *VERSIONS = "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]";

static char *read_all(int fd, size_t *len, size_t max) {
  size_t cap = 65536, n = 0;
  char *b = malloc(cap + 1);
  if (!b) return NULL;
  for (;;) {
    if (n == cap) {
      if (cap >= max) { free(b); errno = EFBIG; return NULL; }
      cap *= 2;
      char *nb = realloc(b, cap + 1);
      if (!nb) { free(b); return NULL; }
      b = nb;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0) { if (errno == EINTR) continue; free(b); return NULL; }
    if (r == 0) break;
    n += (size_t)r;
  }
  b[n] = 0;
  *len = n;
  return b;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/*
 * The string value of a top-level-looking "key": "value" in the JSON config (first occurrence; \" and \\
 * and \/ unescaped). Only to find the daemon and the version for the client's own messages: the daemon
 * parses the config properly.
 */
static char *json_string(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(json, pat);
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p++ != ':') return NULL;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  if (*p++ != '"') return NULL;
  char *out = malloc(strlen(p) + 1), *o = out;
  if (!out) return NULL;
  for (; *p && *p != '"'; p++) {
    if (*p == '\\' && p[1]) {
      p++;
      if (*p != '"' && *p != '\\' && *p != '/') { free(out); return NULL; }
    }
    *o++ = *p;
  }
  *o = 0;
  return out;
}

/* A JSON string literal's inside, escaped (for the client's own messages). */
static void json_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
}

static const char *version_of(const char *conf) {
  static const char *known[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  char *v = json_string(conf, "cniVersion");
  if (v) for (size_t i = 0; i < sizeof known / sizeof *known; i++) if (!strcmp(v, known[i])) { free(v); return known[i]; }
  free(v);
  return "1.1.0";
}

static int fail(const char *conf, int code, const char *msg, const char *details) {
  printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version_of(conf), code);
  json_escape(stdout, msg);
  if (details && *details) {
    fputs("\",\"details\":\"", stdout);
    json_escape(stdout, details);
  }
  fputs("\"}\n", stdout);
  return 1;
}

int main(void) {
  size_t len = 0;
  char *conf = read_all(0, &len, MAX_INPUT);
  if (!conf) return fail("", 5, "cannot read the network configuration from stdin", strerror(errno));
  const char *cmd = getenv("CNI_COMMAND");
  if (cmd && !strcmp(cmd, "VERSION")) {
    // the config's version when it names one, as the daemon would answer
    char *v = json_string(conf, "cniVersion");
    printf("{\"cniVersion\":\"");
    json_escape(stdout, v && *v ? v : "1.1.0");
    printf("\",\"supportedVersions\":%s}\n", VERSIONS);
    return 0;
  }
  // not a JSON object at all: said here (where the daemon is may be in it); the daemon checks the rest
  const char *first = conf, *last = conf + len;
  while (*first == ' ' || *first == '\t' || *first == '\n' || *first == '\r') first++;
  while (last > first && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\n' || last[-1] == '\r')) last--;
  if (first == last) return fail(conf, 6, "no network configuration on stdin", NULL);
  if (*first != '{' || last[-1] != '}') return fail(conf, 6, "failed to decode the network configuration", "not a JSON object");
  char *sock = json_string(conf, "socket");
  const char *path = sock && *sock ? sock : getenv("LOOM_SOCKET") && *getenv("LOOM_SOCKET") ? getenv("LOOM_SOCKET") : "/run/loom/loom.sock";
  char msg[512];
  snprintf(msg, sizeof msg, "the loom daemon at %s is not answering", path);

  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return fail(conf, 7, "the socket path is too long", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return fail(conf, 11, msg, strerror(errno));

  // HTTP/1.0: the daemon closes the connection after its answer, which ends the body
  static const char *vars[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
  char *head = NULL;
  size_t hlen = 0;
  FILE *h = open_memstream(&head, &hlen);
  if (!h) return fail(conf, 5, "out of memory", NULL);
  fprintf(h, "POST /loom/cni/exec HTTP/1.0\r\nHost: loom\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n", len);
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    const char *v = getenv(vars[i]);
    if (!v) continue;
    if (strpbrk(v, "\r\n")) {
      char m[96];
      snprintf(m, sizeof m, "%s holds a line break", vars[i]);
      return fail(conf, 4, m, NULL);
    }
    char name[32];
    strcpy(name, vars[i]);
    for (char *c = name; *c; c++) if (*c == '_') *c = '-';
    fprintf(h, "%s: %s\r\n", name, v);
  }
  fputs("\r\n", h);
  fclose(h);
  if (write_all(fd, head, hlen) < 0 || write_all(fd, conf, len) < 0) return fail(conf, 11, msg, strerror(errno));
  free(head);

  size_t rlen = 0;
  char *resp = read_all(fd, &rlen, MAX_INPUT);
  close(fd);
  if (!resp) return fail(conf, 11, msg, strerror(errno));
  char *body = strstr(resp, "\r\n\r\n");
  int status = 0;
  if (!body || sscanf(resp, "HTTP/1.%*d %d", &status) != 1) return fail(conf, 100, "the loom daemon's answer is not HTTP", NULL);
  *body = 0;
  body += 4;
  int exit_code = -1;
  for (char *l = strstr(resp, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
    if (!strncasecmp(l + 2, "Cni-Exit:", 9)) exit_code = atoi(l + 11);
  }
  if (status != 200 || exit_code < 0) {
    char m[600];
    snprintf(m, sizeof m, "the loom daemon at %s answered %d", path, status);
    return fail(conf, 100, m, body);
  }
  size_t blen = rlen - (size_t)(body - resp);
  if (write_all(1, body, blen) < 0) return 5;
  return exit_code;
}
