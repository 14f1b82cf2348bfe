/* perf/fanout receivers: N UDP sockets on 127.0.0.1 in one process, one per consumer, that count
 * and check what arrives (the stream of fanout.h) and report on request.
 *
 *   fanout_recv --count N [--rcvbuf BYTES] [--srtp-lib PATH [--preload PATH]]
 *
 * Prints "ports <p1> ... <pN>" once its sockets are bound, then reads commands on stdin, one per
 * line, and answers on stdout:
 *
 *   expect I SSRC PT KEYHEX|-   what consumer I's packets must carry: SSRC and payload type (as
 *                               its rtpParameters say), and with a key (hex) they are SRTP and
 *                               are unprotected with it (a new libsrtp session, replay window
 *                               1024): 30 bytes for AES_CM_128_HMAC_SHA1_80, 28 bytes for
 *                               AEAD_AES_128_GCM. No answer.
 *   run RUN COUNT KIND SIZE KF SEQ0 TS0
 *                               a run starts: the generator's stream (fanout.h); every counter is
 *                               reset. No answer.
 *   report QUIET_MS MAX_MS      drain until no media packet of the run came for QUIET_MS (at most
 *                               MAX_MS), then answer one line per consumer
 *                               "c I received unique dup reorder header payload stale rtcp srtp
 *                               other" and "end cpu_ns <this process's CPU time so far>".
 *   quit (or end of input)      exit 0.
 *
 * Per packet: RTCP (second byte 192..223, RFC 5761) is counted and skipped; with a key the packet
 * is unprotected first (a replayed packet is a duplicate, any other failure counts in `srtp`);
 * the RTP header is parsed (CSRCs, extension and padding skipped); the payload must be exactly
 * the one fanout.h builds for the index it carries (else `payload`; a payload of another run is
 * `stale`); the header must carry the expected SSRC and payload type, the generator's marker,
 * and a sequence number and timestamp that differ from the sent ones by the same amount as the
 * consumer's first packet of the run (else `header`). A bitmap per consumer finds duplicates;
 * a packet whose index is below the highest seen is `reorder`. Loss is COUNT - unique.
 *
 * To stay cheap it reads every readable socket with recvmmsg, then pauses 0.5 ms so the next
 * round finds fuller batches (at 100k packets/s per socket that is 50 datagrams, well within
 * any receive buffer the harness sets).
 *
 * libsrtp 2.x is loaded with dlopen (the harness passes pylibsrtp's bundled copy, with
 * libpython preloaded for its unresolved symbols, or the system's libsrtp2); the policy struct
 * below is libsrtp 2.x's layout on LP64, which the harness checks against pylibsrtp's cffi. */
#define _GNU_SOURCE

#include "fanout.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONSUMERS 1000
#define SRTP_KEY_BYTES 30     /* AES_CM_128_HMAC_SHA1_80: 16-byte key, 14-byte salt */
#define SRTP_GCM_KEY_BYTES 28 /* AEAD_AES_128_GCM: 16-byte key, 12-byte salt */
#define SRTP_REPLAY_WINDOW 1024
#define SRTP_REPLAY_FAIL 9
#define SRTP_REPLAY_OLD 10
#define SSRC_ANY_INBOUND 2
#define RECV_NAP_NS 500000 /* pause after a round of reads */

struct srtp_crypto_policy {
    uint32_t cipher_type;
    int cipher_key_len;
    uint32_t auth_type;
    int auth_key_len;
    int auth_tag_len;
    int sec_serv;
};

struct srtp_policy {
    struct {
        int type;
        unsigned int value;
    } ssrc;
    struct srtp_crypto_policy rtp, rtcp;
    unsigned char *key;
    void **keys;
    unsigned long num_master_keys;
    void *deprecated_ekt;
    unsigned long window_size;
    int allow_repeat_tx;
    int *enc_xtn_hdr;
    int enc_xtn_hdr_count;
    struct srtp_policy *next;
};

_Static_assert(sizeof(struct srtp_policy) == 128, "libsrtp 2.x srtp_policy_t is 128 bytes");

static struct {
    int (*init)(void);
    void (*rtp_default)(struct srtp_crypto_policy *);
    void (*rtcp_default)(struct srtp_crypto_policy *);
    void (*gcm_128)(struct srtp_crypto_policy *); /* srtp_crypto_policy_set_aes_gcm_128_16_auth */
    int (*create)(void **session, const struct srtp_policy *policy);
    int (*unprotect)(void *session, void *packet, int *len);
    int (*dealloc)(void *session);
} srtp;

struct consumer {
    int fd;
    uint16_t port;
    uint32_t ssrc;
    uint8_t pt;
    void *session;
    uint64_t *seen;
    uint32_t highest;
    int any, have_delta;
    uint16_t seq_delta;
    uint32_t ts_delta;
    uint64_t received, unique, dup, reorder, header, payload, stale, rtcp, srtp_fail, other;
};

static struct consumer consumers[MAX_CONSUMERS];
static unsigned n_consumers;
static struct fo_stream stream;
static int in_run;
static int64_t last_media_ns;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *symbol(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "fanout_recv: %s\n", dlerror());
        exit(1);
    }
    return p;
}

static void load_srtp(const char *path, const char *preload)
{
    if (preload && !dlopen(preload, RTLD_NOW | RTLD_GLOBAL)) {
        fprintf(stderr, "fanout_recv: %s\n", dlerror());
        exit(1);
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "fanout_recv: %s\n", dlerror());
        exit(1);
    }
    *(void **)&srtp.init = symbol(lib, "srtp_init");
    *(void **)&srtp.rtp_default = symbol(lib, "srtp_crypto_policy_set_rtp_default");
    *(void **)&srtp.rtcp_default = symbol(lib, "srtp_crypto_policy_set_rtcp_default");
    *(void **)&srtp.gcm_128 = symbol(lib, "srtp_crypto_policy_set_aes_gcm_128_16_auth");
    *(void **)&srtp.create = symbol(lib, "srtp_create");
    *(void **)&srtp.unprotect = symbol(lib, "srtp_unprotect");
    *(void **)&srtp.dealloc = symbol(lib, "srtp_dealloc");
    if (srtp.init() != 0) {
        fprintf(stderr, "fanout_recv: srtp_init failed\n");
        exit(1);
    }
}

static void open_sockets(unsigned n, int rcvbuf)
{
    for (unsigned i = 0; i < n; i++) {
        struct consumer *c = &consumers[i];
        c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (c->fd < 0)
            die("socket");
        if (rcvbuf && setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf))
            die("SO_RCVBUF");
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(c->fd, (struct sockaddr *)&a, sizeof a) ||
            getsockname(c->fd, (struct sockaddr *)&a, &len))
            die("bind");
        c->port = ntohs(a.sin_port);
    }
    n_consumers = n;
}

/* The key's bytes; returns how many (SRTP_KEY_BYTES or SRTP_GCM_KEY_BYTES), or -1. */
static int hex_key(const char *text, unsigned char key[SRTP_KEY_BYTES])
{
    size_t n = strlen(text) / 2;
    if (strlen(text) % 2 || (n != SRTP_KEY_BYTES && n != SRTP_GCM_KEY_BYTES))
        return -1;
    for (size_t k = 0; k < n; k++) {
        unsigned v;
        if (sscanf(text + 2 * k, "%2x", &v) != 1)
            return -1;
        key[k] = (unsigned char)v;
    }
    return (int)n;
}

static void expect(unsigned i, uint32_t ssrc, unsigned pt, const char *key_text)
{
    if (i >= n_consumers || pt > 127) {
        fprintf(stderr, "fanout_recv: bad expect for consumer %u\n", i);
        exit(2);
    }
    struct consumer *c = &consumers[i];
    c->ssrc = ssrc;
    c->pt = (uint8_t)pt;
    if (c->session) {
        srtp.dealloc(c->session);
        c->session = NULL;
    }
    if (!strcmp(key_text, "-"))
        return;
    unsigned char key[SRTP_KEY_BYTES];
    int key_bytes = srtp.create ? hex_key(key_text, key) : -1;
    if (key_bytes < 0) {
        fprintf(stderr, "fanout_recv: consumer %u: a key needs --srtp-lib and 60 (AES-CM) or "
                        "56 (GCM) hex digits\n", i);
        exit(2);
    }
    struct srtp_policy policy;
    memset(&policy, 0, sizeof policy);
    if (key_bytes == SRTP_GCM_KEY_BYTES) {
        srtp.gcm_128(&policy.rtp);
        srtp.gcm_128(&policy.rtcp);
    } else {
        srtp.rtp_default(&policy.rtp);
        srtp.rtcp_default(&policy.rtcp);
    }
    policy.ssrc.type = SSRC_ANY_INBOUND;
    policy.key = key;
    policy.window_size = SRTP_REPLAY_WINDOW;
    if (srtp.create(&c->session, &policy) != 0) {
        fprintf(stderr, "fanout_recv: srtp_create failed\n");
        exit(1);
    }
}

static void start_run(const struct fo_stream *s)
{
    stream = *s;
    size_t words = ((size_t)s->count + 63) / 64;
    for (unsigned i = 0; i < n_consumers; i++) {
        struct consumer *c = &consumers[i];
        free(c->seen);
        c->seen = calloc(words ? words : 1, sizeof *c->seen);
        if (!c->seen)
            die("calloc");
        c->highest = 0;
        c->any = c->have_delta = 0;
        c->received = c->unique = c->dup = c->reorder = c->header = c->payload = 0;
        c->stale = c->rtcp = c->srtp_fail = c->other = 0;
    }
    in_run = 1;
}

/* Whether the payload is exactly packet `index`'s; `index` is read from it. 0: it is, 1: not
 * of this run, -1: wrong. */
static int check_payload(const uint8_t *p, size_t len, uint32_t *index)
{
    if (len < FO_MIN_PAYLOAD || fo_get32(p + 4) != FO_MAGIC)
        return -1;
    if (!in_run || fo_get32(p + 8) != stream.run)
        return 1;
    *index = fo_get32(p + 12);
    if (*index >= stream.count || len != stream.payload)
        return -1;
    uint8_t fields[FO_FIELDS_END];
    fo_fields(&stream, *index, fields);
    if (memcmp(p, fields, FO_FIELDS_END) ||
        memcmp(p + FO_FIELDS_END, fo_filler(*index), len - FO_FIELDS_END))
        return -1;
    return 0;
}

static int header_ok(struct consumer *c, const uint8_t *b, uint32_t index)
{
    uint16_t seq_delta = (uint16_t)(fo_get16(b + 2) - fo_seq(&stream, index));
    uint32_t ts_delta = fo_get32(b + 4) - fo_timestamp(&stream, index);
    if (!c->have_delta) {
        c->have_delta = 1;
        c->seq_delta = seq_delta;
        c->ts_delta = ts_delta;
    }
    return (b[1] & 0x7F) == c->pt && fo_get32(b + 8) == c->ssrc &&
           !!(b[1] & 0x80) == fo_marker(&stream, index) && seq_delta == c->seq_delta &&
           ts_delta == c->ts_delta;
}

static void handle(struct consumer *c, uint8_t *b, int len)
{
    if (len < FO_HEADER_BYTES) {
        c->other++;
        return;
    }
    if (b[1] >= 192 && b[1] <= 223) {
        c->rtcp++;
        return;
    }
    if (c->session) {
        int status = srtp.unprotect(c->session, b, &len);
        if (status == SRTP_REPLAY_FAIL || status == SRTP_REPLAY_OLD) {
            c->dup++;
            return;
        }
        if (status != 0) {
            c->srtp_fail++;
            return;
        }
    }
    if (len < FO_HEADER_BYTES || b[0] >> 6 != 2) {
        c->other++;
        return;
    }
    size_t start = FO_HEADER_BYTES + 4u * (b[0] & 0x0F), end = (size_t)len;
    if ((b[0] & 0x10) && start + 4 <= end)
        start += 4 + 4u * fo_get16(b + start + 2);
    if ((b[0] & 0x20) && end > start)
        end = b[end - 1] <= end - start ? end - b[end - 1] : start;
    if (start > end) {
        c->header++;
        return;
    }
    uint32_t index = 0;
    int verdict = check_payload(b + start, end - start, &index);
    if (verdict) {
        if (verdict > 0)
            c->stale++;
        else
            c->payload++;
        return;
    }
    last_media_ns = fo_now_ns();
    c->received++;
    if (!header_ok(c, b, index))
        c->header++;
    uint64_t bit = 1ull << (index & 63);
    if (c->seen[index >> 6] & bit) {
        c->dup++;
        return;
    }
    c->seen[index >> 6] |= bit;
    c->unique++;
    if (c->any && index < c->highest)
        c->reorder++;
    if (!c->any || index > c->highest)
        c->highest = index;
    c->any = 1;
}

static void drain(struct consumer *c)
{
    static uint8_t slots[FO_BATCH][FO_SLOT] __attribute__((aligned(16)));
    struct mmsghdr msgs[FO_BATCH];
    struct iovec iov[FO_BATCH];
    for (;;) {
        fo_rx_prepare(msgs, iov, slots);
        int n = recvmmsg(c->fd, msgs, FO_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNREFUSED)
                continue;
            die("recvmmsg");
        }
        for (int k = 0; k < n; k++)
            handle(c, slots[k], (int)msgs[k].msg_len);
        if (n < FO_BATCH)
            return;
    }
}

static void report(void)
{
    for (unsigned i = 0; i < n_consumers; i++) {
        const struct consumer *c = &consumers[i];
        printf("c %u %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", i,
               (unsigned long long)c->received, (unsigned long long)c->unique,
               (unsigned long long)c->dup, (unsigned long long)c->reorder,
               (unsigned long long)c->header, (unsigned long long)c->payload,
               (unsigned long long)c->stale, (unsigned long long)c->rtcp,
               (unsigned long long)c->srtp_fail, (unsigned long long)c->other);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long long cpu = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
                    ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    printf("end cpu_ns %lld\n", cpu);
    fflush(stdout);
}

struct report_request {
    int pending;
    int64_t quiet_ns, deadline_ns;
};

/* Handle one command line; returns 0 to quit. */
static int command(char *line, struct report_request *rq)
{
    unsigned i, pt;
    unsigned long ssrc;
    char key[128], kind[16];
    unsigned long run, count, size, kf, seq0, ts0, quiet, max;
    if (sscanf(line, "expect %u %lu %u %127s", &i, &ssrc, &pt, key) == 4) {
        expect(i, (uint32_t)ssrc, pt, key);
    } else if (sscanf(line, "run %lu %lu %15s %lu %lu %lu %lu", &run, &count, kind, &size, &kf,
                      &seq0, &ts0) == 7) {
        struct fo_stream s = {.video = !strcmp(kind, "video"), .payload = (uint32_t)size,
                              .kf_interval = (uint32_t)kf, .run = (uint32_t)run,
                              .count = (uint32_t)count, .seq0 = (uint16_t)seq0,
                              .ts0 = (uint32_t)ts0};
        start_run(&s);
    } else if (sscanf(line, "report %lu %lu", &quiet, &max) == 2) {
        int64_t now = fo_now_ns();
        rq->pending = 1;
        rq->quiet_ns = (int64_t)quiet * 1000000;
        rq->deadline_ns = now + (int64_t)max * 1000000;
        last_media_ns = now;
    } else if (!strncmp(line, "quit", 4)) {
        return 0;
    } else if (*line) {
        fprintf(stderr, "fanout_recv: unknown command: %s\n", line);
        exit(2);
    }
    return 1;
}

/* Read what stdin has; run every complete line. Returns 0 at end of input or on quit. */
static int read_commands(struct report_request *rq)
{
    static char buf[65536];
    static size_t have;
    ssize_t r = read(0, buf + have, sizeof buf - 1 - have);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN;
    if (r == 0)
        return 0;
    have += (size_t)r;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = 0;
        if (!command(line, rq))
            return 0;
        line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1) {
        fprintf(stderr, "fanout_recv: command line too long\n");
        exit(2);
    }
    return 1;
}

static void parse(int argc, char **argv, unsigned *n, int *rcvbuf, const char **lib,
                  const char **preload)
{
    static const struct option longs[] = {{"count", 1, 0, 'n'},    {"rcvbuf", 1, 0, 'r'},
                                          {"srtp-lib", 1, 0, 'l'}, {"preload", 1, 0, 'p'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n': *n = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': *rcvbuf = (int)strtol(optarg, NULL, 10); break;
        case 'l': *lib = optarg; break;
        case 'p': *preload = optarg; break;
        default: exit(2);
        }
    }
    if (*n < 1 || *n > MAX_CONSUMERS) {
        fprintf(stderr, "fanout_recv: --count must be 1..%d\n", MAX_CONSUMERS);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    unsigned n = 0;
    int rcvbuf = 0;
    const char *lib = NULL, *preload = NULL;
    parse(argc, argv, &n, &rcvbuf, &lib, &preload);
    fo_pattern_init();
    if (lib)
        load_srtp(lib, preload);
    open_sockets(n, rcvbuf);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = MAX_CONSUMERS};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev))
        die("epoll_ctl stdin");
    for (unsigned i = 0; i < n; i++) {
        ev.data.u32 = i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, consumers[i].fd, &ev))
            die("epoll_ctl");
    }
    printf("ports");
    for (unsigned i = 0; i < n; i++)
        printf(" %u", consumers[i].port);
    printf("\n");
    fflush(stdout);

    struct report_request rq = {0};
    struct epoll_event events[64];
    const struct timespec nap = {.tv_sec = 0, .tv_nsec = RECV_NAP_NS};
    for (;;) {
        int timeout = -1;
        if (rq.pending) {
            int64_t now = fo_now_ns();
            int64_t until = last_media_ns + rq.quiet_ns;
            if (until > rq.deadline_ns)
                until = rq.deadline_ns;
            if (now >= until) {
                rq.pending = 0;
                report();
                continue;
            }
            timeout = (int)((until - now) / 1000000) + 1;
        }
        int k = epoll_wait(ep, events, 64, timeout);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        int drained = 0;
        for (int e = 0; e < k; e++) {
            uint32_t id = events[e].data.u32;
            if (id == MAX_CONSUMERS) {
                if (!read_commands(&rq))
                    return 0;
            } else {
                drain(&consumers[id]);
                drained = 1;
            }
        }
        if (drained) /* let datagrams gather: fewer, fuller batches, fewer system calls */
            nanosleep(&nap, NULL);
    }
}
