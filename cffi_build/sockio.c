/* mediaworker hot path: batched UDP receive and send (recvmmsg, sendmmsg) into caller-provided slots.
 *
 * The caller's arrays are checked before any system call, so a wrong slot index or offset is an
 * argument error and never a write outside the slab. The per-message kernel structures live on
 * the stack: nothing is allocated per call. */
#define _GNU_SOURCE /* recvmmsg, sendmmsg, struct mmsghdr */

#include "sockio.h"

#include <errno.h>
#include <stdint.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Messages per sendmmsg call; a larger batch takes several calls. */
#define SEND_CHUNK 256

union sockio_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
};

static void addr_from_sockaddr(struct mw_sockio_addr *out, const union sockio_sockaddr *name,
                               socklen_t name_len)
{
    memset(out, 0, sizeof *out);
    if (name_len > sizeof *name)
        return; /* the kernel had more to say than fits: not IPv4 or IPv6 */
    if (name_len >= sizeof name->v4 && name->sa.sa_family == AF_INET) {
        out->family = MW_SOCKIO_FAMILY_IPV4;
        out->port = ntohs(name->v4.sin_port);
        memcpy(out->addr, &name->v4.sin_addr, 4);
    } else if (name_len >= sizeof name->v6 && name->sa.sa_family == AF_INET6) {
        out->family = MW_SOCKIO_FAMILY_IPV6;
        out->port = ntohs(name->v6.sin6_port);
        out->scope_id = name->v6.sin6_scope_id;
        memcpy(out->addr, &name->v6.sin6_addr, 16);
    }
}

/* Fill *name from *in; returns its length, or 0 when the family is neither IPv4 nor IPv6. */
static socklen_t addr_to_sockaddr(union sockio_sockaddr *name, const struct mw_sockio_addr *in)
{
    if (in->family == MW_SOCKIO_FAMILY_IPV4) {
        memset(&name->v4, 0, sizeof name->v4);
        name->v4.sin_family = AF_INET;
        name->v4.sin_port = htons(in->port);
        memcpy(&name->v4.sin_addr, in->addr, 4);
        return sizeof name->v4;
    }
    if (in->family == MW_SOCKIO_FAMILY_IPV6) {
        memset(&name->v6, 0, sizeof name->v6);
        name->v6.sin6_family = AF_INET6;
        name->v6.sin6_port = htons(in->port);
        name->v6.sin6_scope_id = in->scope_id;
        memcpy(&name->v6.sin6_addr, in->addr, 16);
        return sizeof name->v6;
    }
    return 0;
}

int mw_sockio_recv_batch(int fd, uint8_t *slab, size_t slab_len, size_t slot_size,
                         const uint32_t *slots, uint32_t n, uint32_t *lengths,
                         struct mw_sockio_addr *addrs, uint8_t *flags, int *err)
{
    struct mmsghdr msgs[MW_SOCKIO_MAX_RECV];
    struct iovec iovs[MW_SOCKIO_MAX_RECV];
    union sockio_sockaddr names[MW_SOCKIO_MAX_RECV];
    int local_err;

    if (err == NULL)
        err = &local_err;
    *err = 0;
    if (n == 0)
        return 0;
    if (n > MW_SOCKIO_MAX_RECV || slab == NULL || slot_size == 0 || slots == NULL ||
        lengths == NULL) {
        *err = EINVAL;
        return MW_SOCKIO_ERR_ARGS;
    }

    size_t slot_count = slab_len / slot_size;
    for (uint32_t i = 0; i < n; i++) {
        if (slots[i] >= slot_count) {
            *err = EINVAL;
            return MW_SOCKIO_ERR_ARGS;
        }
        iovs[i].iov_base = slab + (size_t)slots[i] * slot_size;
        iovs[i].iov_len = slot_size;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof names[i];
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = NULL;
        msgs[i].msg_hdr.msg_controllen = 0;
        msgs[i].msg_hdr.msg_flags = 0;
        msgs[i].msg_len = 0;
    }

    int got;
    int retries = 0;
    for (;;) {
        got = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL);
        if (got >= 0 || errno != EINTR || retries >= MW_SOCKIO_MAX_EINTR_RETRIES)
            break;
        retries++;
    }
    if (got < 0) {
        *err = errno;
        if (*err == EAGAIN || *err == EWOULDBLOCK)
            return 0;
        return MW_SOCKIO_ERR_SYSCALL;
    }

    for (int i = 0; i < got; i++) {
        size_t len = msgs[i].msg_len;
        lengths[i] = (uint32_t)(len < slot_size ? len : slot_size);
        if (flags != NULL)
            flags[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? MW_SOCKIO_RECV_TRUNCATED : 0;
        if (addrs != NULL)
            addr_from_sockaddr(&addrs[i], &names[i], msgs[i].msg_hdr.msg_namelen);
    }
    return got;
}

/* Errors that concern one message (its destination or its size), after which the next message
 * may well go out. Anything else concerns the socket and stops the batch. */
static int is_message_error(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EACCES:
    case EPERM:
    case EMSGSIZE:
    case EINVAL:
    case EAFNOSUPPORT:
    case EADDRNOTAVAIL:
        return 1;
    default:
        return 0;
    }
}

static int send_args_valid(const uint8_t *slab, size_t slab_len, const size_t *offsets,
                           const uint32_t *lengths, const struct mw_sockio_addr *dests,
                           uint32_t n)
{
    if (n == 0)
        return 1;
    if (n > INT32_MAX || offsets == NULL || lengths == NULL || (slab == NULL && slab_len != 0))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (offsets[i] > slab_len || lengths[i] > slab_len - offsets[i])
            return 0;
        if (dests != NULL && dests[i].family != MW_SOCKIO_FAMILY_IPV4 &&
            dests[i].family != MW_SOCKIO_FAMILY_IPV6)
            return 0;
    }
    return 1;
}

/* Send msgs[0..count) (one chunk); returns 0 to go on with the next chunk, -1 when the batch
 * stopped (result->err set; the caller accounts for what is left). */
static int send_chunk(int fd, struct mmsghdr *msgs, uint32_t count,
                      struct mw_sockio_send_result *result)
{
    uint32_t done = 0;
    int retries = 0;
    while (done < count) {
        int sent = sendmmsg(fd, msgs + done, count - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent > 0) {
            done += (uint32_t)sent;
            result->sent += (uint32_t)sent;
            continue;
        }
        int e = sent == 0 ? EAGAIN : errno;
        if (e == EINTR && retries < MW_SOCKIO_MAX_EINTR_RETRIES) {
            retries++;
            continue;
        }
        if (is_message_error(e)) {
            done++; /* the kernel refused msgs[done] alone: skip it */
            result->dropped++;
            result->drop_err = e;
            continue;
        }
        result->err = e;
        return -1;
    }
    return 0;
}

int mw_sockio_send_batch(int fd, const uint8_t *slab, size_t slab_len, const size_t *offsets,
                         const uint32_t *lengths, const struct mw_sockio_addr *dests, uint32_t n,
                         struct mw_sockio_send_result *result)
{
    struct mmsghdr msgs[SEND_CHUNK];
    struct iovec iovs[SEND_CHUNK];
    union sockio_sockaddr names[SEND_CHUNK];
    struct mw_sockio_send_result local_result;

    if (result == NULL)
        result = &local_result;
    memset(result, 0, sizeof *result);
    if (!send_args_valid(slab, slab_len, offsets, lengths, dests, n)) {
        result->err = EINVAL;
        result->left = n;
        return MW_SOCKIO_ERR_ARGS;
    }

    uint32_t next = 0;
    while (next < n) {
        uint32_t count = n - next < SEND_CHUNK ? n - next : SEND_CHUNK;
        for (uint32_t i = 0; i < count; i++) {
            uint32_t m = next + i;
            /* no arithmetic on a NULL slab (only possible with every length 0) */
            iovs[i].iov_base = slab == NULL ? NULL : (void *)(slab + offsets[m]);
            iovs[i].iov_len = lengths[m];
            if (dests != NULL) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = addr_to_sockaddr(&names[i], &dests[m]);
            } else {
                msgs[i].msg_hdr.msg_name = NULL;
                msgs[i].msg_hdr.msg_namelen = 0;
            }
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = NULL;
            msgs[i].msg_hdr.msg_controllen = 0;
            msgs[i].msg_hdr.msg_flags = 0;
            msgs[i].msg_len = 0;
        }
        if (send_chunk(fd, msgs, count, result) != 0) {
            result->left = n - result->sent - result->dropped;
            return (int)result->sent;
        }
        next += count;
    }
    return (int)result->sent;
}
