/* mediaworker hot path: batched UDP receive and send (recvmmsg, sendmmsg) into caller-provided slots.
 *
 * Both calls work on one slab of memory (a buffer pool's slab) and never touch a byte outside
 * [slab, slab + slab_len): every slot index and (offset, length) pair is checked before the
 * kernel sees it. Both use MSG_DONTWAIT, so they never block even on a blocking fd. Addresses
 * cross this interface as struct mw_sockio_addr, never as a struct sockaddr, so the header needs
 * no system header and cffi can read it. */
#ifndef MW_SOCKIO_H
#define MW_SOCKIO_H

#include <stddef.h>
#include <stdint.h>

enum mw_sockio_limits {
    /* Datagrams one mw_sockio_recv_batch call may ask for (one recvmmsg). */
    MW_SOCKIO_MAX_RECV = 256,
    /* EINTR retries of one system call before the batch gives up and reports EINTR. */
    MW_SOCKIO_MAX_EINTR_RETRIES = 8
};

/* Address family of struct mw_sockio_addr (not the kernel's AF_* values). */
enum mw_sockio_family {
    MW_SOCKIO_FAMILY_NONE = 0, /* no address, or one that is neither IPv4 nor IPv6 */
    MW_SOCKIO_FAMILY_IPV4 = 4,
    MW_SOCKIO_FAMILY_IPV6 = 6
};

/* Negative return values. A system error's errno is in the caller's err out-argument. */
enum mw_sockio_status {
    MW_SOCKIO_ERR_SYSCALL = -1, /* the socket failed (EBADF, ENOTSOCK, a pending ICMP error...) */
    MW_SOCKIO_ERR_ARGS = -2     /* bad arguments (slot outside the slab, n too large, bad family):
                                   nothing was received or sent; a bug in the caller */
};

/* Per-datagram flags written by mw_sockio_recv_batch. */
enum mw_sockio_recv_flag {
    MW_SOCKIO_RECV_TRUNCATED = 1 /* the datagram was larger than the slot; its tail was lost */
};

/* An IPv4 or IPv6 transport address. IPv4 uses addr[0..3] (network order) and zeroes the rest;
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d on a dual-stack socket) stays IPv6. */
struct mw_sockio_addr {
    uint16_t family;   /* enum mw_sockio_family */
    uint16_t port;     /* host order */
    uint32_t scope_id; /* IPv6 zone (interface index), 0 otherwise */
    uint8_t addr[16];  /* network order */
};

/* What mw_sockio_send_batch did. sent + dropped + left == n. Messages go out in order, so the
 * `left` messages are always the last ones of the batch. */
struct mw_sockio_send_result {
    uint32_t sent;    /* accepted by the kernel */
    uint32_t dropped; /* refused one by one (unreachable, refused, too big, bad destination):
                         skipped, and the batch went on */
    uint32_t left;    /* not sent because the socket would block or failed as a whole */
    int32_t err;      /* errno that stopped the batch (EAGAIN, ENOBUFS, EBADF...), 0 if none */
    int32_t drop_err; /* errno of the last dropped message, 0 if none */
};

/* Receive up to n (<= MW_SOCKIO_MAX_RECV) datagrams with one recvmmsg(MSG_DONTWAIT). Datagram i
 * lands in slot slots[i], at slab + slots[i] * slot_size; its length (at most slot_size) goes to
 * lengths[i], its source to addrs[i] (may be NULL), its flags to flags[i] (may be NULL).
 * Returns the number received (0..n). *err is 0 when at least one datagram came, EAGAIN when the
 * socket was empty (returns 0), the errno when the socket failed (returns MW_SOCKIO_ERR_SYSCALL),
 * EINVAL for bad arguments (returns MW_SOCKIO_ERR_ARGS). */
int mw_sockio_recv_batch(int fd, uint8_t *slab, size_t slab_len, size_t slot_size,
                         const uint32_t *slots, uint32_t n, uint32_t *lengths,
                         struct mw_sockio_addr *addrs, uint8_t *flags, int *err);

/* Send n messages with sendmmsg(MSG_DONTWAIT | MSG_NOSIGNAL), as many system calls as needed.
 * Message i is lengths[i] bytes at slab + offsets[i], to dests[i]; dests == NULL sends on a
 * connected socket. Several messages may share the same bytes. A message refused on its own
 * (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EACCES, EPERM, EMSGSIZE, EINVAL, EAFNOSUPPORT,
 * EADDRNOTAVAIL) is dropped and the batch goes on; any other error (EAGAIN, ENOBUFS, EBADF...)
 * stops it and the rest are `left`. EINTR is retried at most MW_SOCKIO_MAX_EINTR_RETRIES times.
 * IPv4 destinations on an AF_INET6 socket must be given as IPv4-mapped IPv6 addresses.
 * Returns result->sent, or MW_SOCKIO_ERR_ARGS (nothing sent, result->err = EINVAL) when a
 * message lies outside the slab or a destination has no family. */
int mw_sockio_send_batch(int fd, const uint8_t *slab, size_t slab_len, const size_t *offsets,
                         const uint32_t *lengths, const struct mw_sockio_addr *dests, uint32_t n,
                         struct mw_sockio_send_result *result);

#endif
