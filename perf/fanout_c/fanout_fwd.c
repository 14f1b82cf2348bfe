/* perf/fanout baseline: the least a fan-out forwarder can do on this kernel. It receives
 * datagrams on one UDP socket with recvmmsg and sends each batch on to N destinations with one
 * sendmmsg per destination, from one socket per destination (as the worker sends each
 * consumer's packets from its own transport's socket). No parsing, no rewriting, no crypto: SRTP
 * packets pass through as they are.
 *
 *   fanout_fwd --dest-ports P1,P2,...,PN [--rcvbuf BYTES] [--sndbuf BYTES]
 *
 * Every socket is on 127.0.0.1 and gets the same SO_RCVBUF and SO_SNDBUF as the worker's
 * transports. Prints "port <listening port>" once bound, forwards until its stdin closes, then
 * prints "received <datagrams> sent <datagrams> errors <failed sends>" and exits 0. */
#define _GNU_SOURCE

#include "fanout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DESTS 1000

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int udp_socket(int rcvbuf, int sndbuf)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    if (rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf))
        die("SO_RCVBUF");
    if (sndbuf && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf))
        die("SO_SNDBUF");
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a))
        die("bind");
    return fd;
}

static unsigned parse_ports(const char *text, struct sockaddr_in *dests)
{
    unsigned n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        unsigned long port = strtoul(p, &end, 10);
        if (end == p || port == 0 || port > 65535 || n == MAX_DESTS ||
            (*end && *end != ',')) {
            fprintf(stderr, "fanout_fwd: bad --dest-ports: %s\n", text);
            exit(2);
        }
        memset(&dests[n], 0, sizeof dests[n]);
        dests[n].sin_family = AF_INET;
        dests[n].sin_port = htons((uint16_t)port);
        dests[n].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}

int main(int argc, char **argv)
{
    static struct sockaddr_in dests[MAX_DESTS];
    static int out[MAX_DESTS];
    static uint8_t slots[FO_BATCH][FO_SLOT] __attribute__((aligned(16)));
    static const struct option longs[] = {{"dest-ports", 1, 0, 'd'}, {"rcvbuf", 1, 0, 'r'},
                                          {"sndbuf", 1, 0, 's'}, {0, 0, 0, 0}};
    unsigned n = 0;
    int rcvbuf = 0, sndbuf = 0, c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'd': n = parse_ports(optarg, dests); break;
        case 'r': rcvbuf = (int)strtol(optarg, NULL, 10); break;
        case 's': sndbuf = (int)strtol(optarg, NULL, 10); break;
        default: exit(2);
        }
    }
    if (!n) {
        fprintf(stderr, "fanout_fwd: --dest-ports is required\n");
        return 2;
    }
    int in = udp_socket(rcvbuf, sndbuf);
    for (unsigned d = 0; d < n; d++)
        out[d] = udp_socket(rcvbuf, sndbuf);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    if (getsockname(in, (struct sockaddr *)&a, &alen))
        die("getsockname");
    printf("port %u\n", ntohs(a.sin_port));
    fflush(stdout);

    struct mmsghdr rx[FO_BATCH], tx[FO_BATCH];
    struct iovec iov[FO_BATCH];
    unsigned long long received = 0, sent = 0, errors = 0;
    struct pollfd fds[2] = {{.fd = in, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (fds[1].revents) {
            char buf[256];
            ssize_t r = read(0, buf, sizeof buf);
            if (r <= 0 && !(r < 0 && errno == EINTR))
                break;
        }
        if (!(fds[0].revents & POLLIN))
            continue;
        for (;;) {
            fo_rx_prepare(rx, iov, slots);
            int got = recvmmsg(in, rx, FO_BATCH, MSG_DONTWAIT, NULL);
            if (got <= 0) {
                if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    die("recvmmsg");
                break;
            }
            received += (unsigned)got;
            for (int k = 0; k < got; k++)
                iov[k].iov_len = rx[k].msg_len;
            for (unsigned d = 0; d < n; d++) {
                for (int k = 0; k < got; k++) {
                    memset(&tx[k].msg_hdr, 0, sizeof tx[k].msg_hdr);
                    tx[k].msg_hdr.msg_name = &dests[d];
                    tx[k].msg_hdr.msg_namelen = sizeof dests[d];
                    tx[k].msg_hdr.msg_iov = &iov[k];
                    tx[k].msg_hdr.msg_iovlen = 1;
                }
                int done = 0;
                while (done < got) {
                    int r = sendmmsg(out[d], tx + done, (unsigned)(got - done), 0);
                    if (r < 0) {
                        if (errno == EINTR)
                            continue;
                        errors += (unsigned)(got - done); /* dropped, as the worker would */
                        break;
                    }
                    done += r;
                    sent += (unsigned)r;
                }
            }
            if (got < FO_BATCH)
                break;
        }
    }
    printf("received %llu sent %llu errors %llu\n", received, sent, errors);
    return 0;
}
