/* mediaworker hot path: SRTP and SRTCP protect/unprotect of a batch of packets, in place in a slab.
 *
 * The crypto is libsrtp's, reached through function pointers: this code does not link libsrtp.
 * The worker takes the four pointers from pylibsrtp's cffi module (pylibsrtp 1.0.0 bundles
 * libsrtp 2.7.0, statically linked) and the sessions (libsrtp's srtp_t) from pylibsrtp Session
 * objects; see worker/_fast/srtp.py. The pointer types below follow libsrtp 2.x:
 *
 *     srtp_err_status_t srtp_protect(srtp_t ctx, void *rtp_hdr, int *len_ptr);
 *
 * and the same for srtp_unprotect, srtp_protect_rtcp and srtp_unprotect_rtcp. srtp_t is a
 * pointer to an opaque struct, passed here as void *; srtp_err_status_t is an enum of small
 * non-negative values (0 is srtp_err_status_ok), returned in the same register as the int
 * declared here. libsrtp 3.x changed these signatures (a separate output buffer and size_t
 * lengths): a pointer of that kind must never be put in struct mw_srtp_api.
 *
 * libsrtp 2.x takes no buffer size: protect appends its trailer after the packet, trusting the
 * caller to have room, and it wants the packet 32-bit aligned. So before libsrtp sees a packet,
 * every function here checks that:
 *   - the slot [offset, offset + capacity) lies inside [slab, slab + slab_len) and its first byte
 *     is 4-byte aligned; otherwise the whole batch is refused (MW_SRTP_ERR_ARGS, a bug in the
 *     caller) and libsrtp is called for none of its packets;
 *   - the packet fits its slot: length <= capacity, and for protect length + the largest trailer
 *     (MW_SRTP_RTP_TRAILER_MAX or MW_SRTP_RTCP_TRAILER_MAX) <= capacity; otherwise that packet
 *     gets MW_SRTP_STATUS_NO_ROOM, is left untouched, and the batch goes on.
 * The trailer bounds are the worst case of libsrtp 2.x without MKI (a 16-byte GCM tag; SRTCP adds
 * its 4-byte index), whatever the session's profile. pylibsrtp's Policy cannot turn MKI on.
 *
 * A session must not be used by two threads at once; cffi releases the GIL around these calls,
 * so the Python side must not call pylibsrtp on a session while a batch runs on it.
 */
#ifndef MW_SRTP_H
#define MW_SRTP_H

#include <stddef.h>
#include <stdint.h>

enum mw_srtp_limits {
    /* Room protect needs after an RTP packet: the longest tag (AEAD_AES_*_GCM, 16 bytes). */
    MW_SRTP_RTP_TRAILER_MAX = 16,
    /* Room protect_rtcp needs after an RTCP packet: the E flag + SRTCP index, then the tag. */
    MW_SRTP_RTCP_TRAILER_MAX = 20,
    /* Slots must start on this boundary (libsrtp 2.x reads the header as 32-bit words). */
    MW_SRTP_ALIGNMENT = 4,
    /* Capacities above this are refused, so every length libsrtp sees fits its int. */
    MW_SRTP_MAX_CAPACITY = 0x7FFF0000,
    /* Shortest packets handed to libsrtp: the RTP fixed header, the RTCP common header + SSRC. */
    MW_SRTP_RTP_MIN_BYTES = 12,
    MW_SRTP_RTCP_MIN_BYTES = 8
};

/* What a batch function returns: the number of packets whose status is MW_SRTP_STATUS_OK
 * (0..n), or this. */
enum mw_srtp_result {
    MW_SRTP_ERR_ARGS = -1 /* a NULL array or api pointer, n > INT32_MAX, or a slot outside the
                             slab, misaligned or larger than MW_SRTP_MAX_CAPACITY: nothing was
                             processed; a bug in the caller */
};

/* Per-packet status: 0, a positive libsrtp 2.x srtp_err_status_t (7 auth_fail, 9 replay_fail,
 * 10 replay_old, 2 bad_param...), or one of these (never a libsrtp value). */
enum mw_srtp_status {
    MW_SRTP_STATUS_OK = 0,
    MW_SRTP_STATUS_NO_ROOM = -1,    /* length > capacity, or no room for the trailer: untouched */
    MW_SRTP_STATUS_NO_SESSION = -2, /* per-packet sessions: this packet's session is NULL
                                       (skipped, untouched) */
    MW_SRTP_STATUS_BAD_SLOT = -3,   /* the slot lies outside the slab or is misaligned; the
                                       batch returned MW_SRTP_ERR_ARGS */
    MW_SRTP_STATUS_NOT_RUN = -4,    /* another packet's slot was bad; the batch was refused */
    MW_SRTP_STATUS_TOO_SHORT = -5,  /* shorter than a fixed header (RTP 12 bytes, RTCP 8), so
                                       libsrtp is not asked to read it: untouched */
    MW_SRTP_STATUS_BAD_RESULT = -6  /* libsrtp said ok but gave a length outside 0..capacity:
                                       a libsrtp bug or an interface change; length unchanged */
};

/* The libsrtp 2.x calls: (srtp_t session, void *packet, int *length). */
typedef int (*mw_srtp_fn)(void *session, void *packet, int *length);

/* libsrtp's four packet functions, all from the same libsrtp as the sessions. */
struct mw_srtp_api {
    mw_srtp_fn protect;
    mw_srtp_fn unprotect;
    mw_srtp_fn protect_rtcp;
    mw_srtp_fn unprotect_rtcp;
};

/* One session for the whole batch. Packet i is lengths[i] bytes at slab + offsets[i], in a slot
 * of capacities[i] bytes; it is protected (unprotected) in place and lengths[i] becomes its new
 * length when status[i] is MW_SRTP_STATUS_OK; otherwise lengths[i] is unchanged. Packets are
 * processed in order (libsrtp's replay window and rollover counter see them in that order).
 * Returns the number of packets with status 0, or MW_SRTP_ERR_ARGS. */
int mw_srtp_protect_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                          size_t slab_len, const size_t *offsets, uint32_t *lengths,
                          const uint32_t *capacities, uint32_t n, int32_t *status);
int mw_srtp_unprotect_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                            size_t slab_len, const size_t *offsets, uint32_t *lengths,
                            const uint32_t *capacities, uint32_t n, int32_t *status);
int mw_srtp_protect_rtcp_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                               size_t slab_len, const size_t *offsets, uint32_t *lengths,
                               const uint32_t *capacities, uint32_t n, int32_t *status);
int mw_srtp_unprotect_rtcp_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                                 size_t slab_len, const size_t *offsets, uint32_t *lengths,
                                 const uint32_t *capacities, uint32_t n, int32_t *status);

/* The same with one session per packet, sessions[i] (a consumer fan-out: each consumer has its
 * own outbound session; an ingress batch: each transport its inbound one). A NULL sessions[i]
 * skips packet i with MW_SRTP_STATUS_NO_SESSION. */
int mw_srtp_protect_each(const struct mw_srtp_api *api, void *const *sessions, uint8_t *slab,
                         size_t slab_len, const size_t *offsets, uint32_t *lengths,
                         const uint32_t *capacities, uint32_t n, int32_t *status);
int mw_srtp_unprotect_each(const struct mw_srtp_api *api, void *const *sessions, uint8_t *slab,
                           size_t slab_len, const size_t *offsets, uint32_t *lengths,
                           const uint32_t *capacities, uint32_t n, int32_t *status);
int mw_srtp_protect_rtcp_each(const struct mw_srtp_api *api, void *const *sessions,
                              uint8_t *slab, size_t slab_len, const size_t *offsets,
                              uint32_t *lengths, const uint32_t *capacities, uint32_t n,
                              int32_t *status);
int mw_srtp_unprotect_rtcp_each(const struct mw_srtp_api *api, void *const *sessions,
                                uint8_t *slab, size_t slab_len, const size_t *offsets,
                                uint32_t *lengths, const uint32_t *capacities, uint32_t n,
                                int32_t *status);

#endif
