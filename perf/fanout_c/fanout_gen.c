/* perf/fanout load generator: sends the RTP stream of fanout.h to one UDP destination at a fixed
 * rate, or writes it to a file, or replays packets from a file (SRTP-protected beforehand by
 * perf/fanout.py) at a fixed rate.
 *
 *   fanout_gen --dest-port P [--fd FD] [--sndbuf BYTES] --rate PPS
 *              (--count N --size B --kind audio|video --pt PT --ssrc S --seq0 Q --ts0 T
 *               --run R [--kf-interval K]  |  --replay FILE)
 *   fanout_gen --dump FILE --count N --size B --kind ... (no sending)
 *
 * Addresses are 127.0.0.1. The socket is --fd, a UDP socket the caller keeps bound between runs
 * (so every run of a comedia stream comes from the same address), or else a new one; it is
 * connected to --dest-port. Pacing: packet k
 * is due at start + k / rate; whatever is due leaves in one sendmmsg of at most FO_BATCH, and
 * when nothing is due the program sleeps until the next packet's time. A generator that falls
 * behind catches up in batches of FO_BATCH, so it always sends every packet; the achieved rate
 * is count / elapsed.
 *
 * File format (--dump, --replay): per packet a 2-byte big-endian length, then the packet.
 * Prints "sent <packets> elapsed_ns <ns> errors <n>" on stdout; exit 0, or 2 on bad arguments,
 * 1 on a system error. */
#define _GNU_SOURCE

#include "fanout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct gen_options {
    int dest_port;
    int fd;
    int sndbuf;
    double rate;
    const char *dump;
    const char *replay;
    struct fo_stream stream;
};

struct packet_source {
    const struct fo_stream *stream; /* synthesised packets, or */
    const uint8_t *file;            /* replayed ones: */
    const size_t *offsets;          /* offset of each packet's length prefix in file */
    uint32_t count;
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void usage(const char *why)
{
    fprintf(stderr, "fanout_gen: %s\n", why);
    exit(2);
}

static unsigned long number(const char *text, unsigned long max, const char *what)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 0);
    if (errno || *end || end == text || v > max) {
        fprintf(stderr, "fanout_gen: bad %s: %s\n", what, text);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv, struct gen_options *o)
{
    static const struct option longs[] = {
        {"dest-port", 1, 0, 'd'}, {"fd", 1, 0, 'f'},        {"sndbuf", 1, 0, 'S'},
        {"rate", 1, 0, 'r'},      {"count", 1, 0, 'n'},     {"size", 1, 0, 'z'},
        {"kind", 1, 0, 'k'},      {"pt", 1, 0, 'p'},        {"ssrc", 1, 0, 's'},
        {"seq0", 1, 0, 'q'},      {"ts0", 1, 0, 't'},       {"run", 1, 0, 'R'},
        {"kf-interval", 1, 0, 'K'}, {"dump", 1, 0, 'D'},    {"replay", 1, 0, 'P'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->stream.payload = 1200;
    o->stream.video = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'd': o->dest_port = (int)number(optarg, 65535, "port"); break;
        case 'f': o->fd = (int)number(optarg, 1 << 20, "fd"); break;
        case 'S': o->sndbuf = (int)number(optarg, 1 << 30, "sndbuf"); break;
        case 'r': o->rate = strtod(optarg, NULL); break;
        case 'n': o->stream.count = (uint32_t)number(optarg, 1u << 30, "count"); break;
        case 'z': o->stream.payload = (uint32_t)number(optarg, FO_MAX_PAYLOAD, "size"); break;
        case 'k':
            if (strcmp(optarg, "audio") && strcmp(optarg, "video"))
                usage("--kind is audio or video");
            o->stream.video = !strcmp(optarg, "video");
            break;
        case 'p': o->stream.pt = (uint8_t)number(optarg, 127, "pt"); break;
        case 's': o->stream.ssrc = (uint32_t)number(optarg, 0xFFFFFFFFu, "ssrc"); break;
        case 'q': o->stream.seq0 = (uint16_t)number(optarg, 0xFFFF, "seq0"); break;
        case 't': o->stream.ts0 = (uint32_t)number(optarg, 0xFFFFFFFFu, "ts0"); break;
        case 'R': o->stream.run = (uint32_t)number(optarg, 0xFFFFFFFFu, "run"); break;
        case 'K': o->stream.kf_interval = (uint32_t)number(optarg, 1u << 30, "kf"); break;
        case 'D': o->dump = optarg; break;
        case 'P': o->replay = optarg; break;
        default: usage("unknown option");
        }
    }
    if (o->stream.payload < FO_MIN_PAYLOAD)
        usage("--size is below the fields every payload carries");
    if (!o->dump && (!o->dest_port || !(o->rate > 0)))
        usage("--dest-port and a positive --rate are required to send");
    if (!o->replay && !o->stream.count)
        usage("--count is required");
}

static void dump(const struct gen_options *o)
{
    FILE *f = fopen(o->dump, "wb");
    if (!f)
        die(o->dump);
    uint8_t buf[FO_SLOT];
    for (uint32_t i = 0; i < o->stream.count; i++) {
        size_t len = fo_build(&o->stream, i, buf);
        uint8_t prefix[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        if (fwrite(prefix, 1, 2, f) != 2 || fwrite(buf, 1, len, f) != len)
            die(o->dump);
    }
    if (fclose(f))
        die(o->dump);
    printf("dumped %u\n", o->stream.count);
}

/* Map a replay file and index its packets. */
static void load(const char *path, struct packet_source *src)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        die(path);
    size_t size = (size_t)st.st_size;
    const uint8_t *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (size && data == MAP_FAILED)
        die("mmap");
    close(fd);
    uint32_t count = 0;
    for (size_t at = 0; at + 2 <= size; at += 2 + fo_get16(data + at))
        count++;
    size_t *offsets = malloc((count ? count : 1) * sizeof *offsets);
    if (!offsets)
        die("malloc");
    uint32_t k = 0;
    size_t at = 0;
    for (; k < count; k++) {
        size_t len = fo_get16(data + at);
        if (at + 2 + len > size || len > FO_SLOT)
            usage("replay file truncated or corrupt");
        offsets[k] = at;
        at += 2 + len;
    }
    src->file = data;
    src->offsets = offsets;
    src->count = count;
}

static int open_socket(const struct gen_options *o)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = o->fd;
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a))
            die("socket");
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK))
        die("--fd");
    if (o->sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof o->sndbuf))
        die("SO_SNDBUF");
    a.sin_port = htons((uint16_t)o->dest_port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a))
        die("connect");
    return fd;
}

/* Send every packet of `src` at `rate` packets per second. */
static void send_paced(int fd, const struct packet_source *src, double rate)
{
    static uint8_t slots[FO_BATCH][FO_SLOT] __attribute__((aligned(16)));
    struct mmsghdr msgs[FO_BATCH];
    struct iovec iov[FO_BATCH];
    uint32_t sent = 0, errors = 0;
    double ns_per_packet = 1e9 / rate;
    prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us instead of the default 50 us */
    int64_t start = fo_now_ns();
    while (sent < src->count) {
        int64_t now = fo_now_ns();
        uint64_t due = (uint64_t)((double)(now - start) / ns_per_packet) + 1;
        if (due > src->count)
            due = src->count;
        if (due <= sent) {
            int64_t at = start + (int64_t)((double)sent * ns_per_packet);
            struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            continue;
        }
        unsigned n = (unsigned)(due - sent < FO_BATCH ? due - sent : FO_BATCH);
        for (unsigned k = 0; k < n; k++) {
            uint32_t i = sent + k;
            if (src->stream) {
                iov[k].iov_base = slots[k];
                iov[k].iov_len = fo_build(src->stream, i, slots[k]);
            } else {
                const uint8_t *p = src->file + src->offsets[i];
                iov[k].iov_base = (void *)(p + 2);
                iov[k].iov_len = fo_get16(p);
            }
            memset(&msgs[k], 0, sizeof msgs[k]);
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        unsigned done = 0;
        while (done < n) {
            int r = sendmmsg(fd, msgs + done, n - done, 0);
            if (r < 0) {
                /* EINTR; an ICMP error left by an earlier datagram (reported once, then
                 * cleared); no buffer for a moment: try the same datagrams again */
                if (errno != EINTR && errno != ECONNREFUSED && errno != ENOBUFS)
                    die("sendmmsg");
                if (++errors > 1000)
                    die("sendmmsg keeps failing");
                if (errno == ENOBUFS)
                    usleep(100);
                continue;
            }
            done += (unsigned)r;
        }
        sent += n;
    }
    int64_t elapsed = fo_now_ns() - start;
    printf("sent %u elapsed_ns %lld errors %u\n", sent, (long long)elapsed, errors);
}

int main(int argc, char **argv)
{
    struct gen_options o;
    parse(argc, argv, &o);
    fo_pattern_init();
    if (o.dump) {
        dump(&o);
        return 0;
    }
    struct packet_source src = {0};
    if (o.replay) {
        load(o.replay, &src);
    } else {
        src.stream = &o.stream;
        src.count = o.stream.count;
    }
    int fd = open_socket(&o);
    send_paced(fd, &src, o.rate);
    close(fd);
    return 0;
}
