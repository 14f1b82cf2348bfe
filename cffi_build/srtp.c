/* mediaworker hot path: SRTP and SRTCP protect/unprotect of a batch of packets, in place in a slab.
 *
 * Two passes: the first checks every slot against the slab (a bad one refuses the whole batch
 * before libsrtp is called at all); the second checks each packet against its slot and calls
 * libsrtp through the api's function pointer. No function allocates. */
#include "srtp.h"

#include <limits.h>

_Static_assert(MW_SRTP_MAX_CAPACITY <= INT_MAX - MW_SRTP_RTCP_TRAILER_MAX,
               "a packet plus its trailer must fit libsrtp's int length");

enum srtp_op { OP_PROTECT, OP_UNPROTECT, OP_PROTECT_RTCP, OP_UNPROTECT_RTCP };

struct op_traits {
    uint32_t room;      /* bytes the operation may append after the packet */
    uint32_t min_bytes; /* shortest packet handed to libsrtp */
};

static struct op_traits traits_of(enum srtp_op op)
{
    struct op_traits t = {0, MW_SRTP_RTP_MIN_BYTES};
    switch (op) {
    case OP_PROTECT:
        t.room = MW_SRTP_RTP_TRAILER_MAX;
        break;
    case OP_UNPROTECT:
        break;
    case OP_PROTECT_RTCP:
        t.room = MW_SRTP_RTCP_TRAILER_MAX;
        t.min_bytes = MW_SRTP_RTCP_MIN_BYTES;
        break;
    case OP_UNPROTECT_RTCP:
        t.min_bytes = MW_SRTP_RTCP_MIN_BYTES;
        break;
    }
    return t;
}

static mw_srtp_fn function_of(const struct mw_srtp_api *api, enum srtp_op op)
{
    switch (op) {
    case OP_PROTECT:
        return api->protect;
    case OP_UNPROTECT:
        return api->unprotect;
    case OP_PROTECT_RTCP:
        return api->protect_rtcp;
    case OP_UNPROTECT_RTCP:
        return api->unprotect_rtcp;
    }
    return NULL;
}

/* The slot [offset, offset + capacity) is inside the slab, aligned, and not too large. The
 * pointer is only formed once offset is known to be inside the slab. */
static int slot_ok(const uint8_t *slab, size_t slab_len, size_t offset, uint32_t capacity)
{
    if (offset > slab_len || capacity > slab_len - offset || capacity > MW_SRTP_MAX_CAPACITY)
        return 0;
    return ((uintptr_t)(slab + offset) % MW_SRTP_ALIGNMENT) == 0;
}

/* First pass: every slot. Marks the bad ones MW_SRTP_STATUS_BAD_SLOT and the rest NOT_RUN
 * (the second pass overwrites those); returns 1 when all are good. */
static int check_slots(const uint8_t *slab, size_t slab_len, const size_t *offsets,
                       const uint32_t *capacities, uint32_t n, int32_t *status)
{
    int all_good = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (slot_ok(slab, slab_len, offsets[i], capacities[i])) {
            status[i] = MW_SRTP_STATUS_NOT_RUN;
        } else {
            status[i] = MW_SRTP_STATUS_BAD_SLOT;
            all_good = 0;
        }
    }
    return all_good;
}

/* One packet whose slot is known good: the length checks, then libsrtp. */
static int32_t run_one(mw_srtp_fn fn, struct op_traits traits, void *session, uint8_t *packet,
                       uint32_t *length, uint32_t capacity)
{
    uint32_t len = *length;
    if (session == NULL)
        return MW_SRTP_STATUS_NO_SESSION;
    if (len > capacity || capacity - len < traits.room)
        return MW_SRTP_STATUS_NO_ROOM;
    if (len < traits.min_bytes)
        return MW_SRTP_STATUS_TOO_SHORT;
    int srtp_len = (int)len; /* len <= capacity <= MW_SRTP_MAX_CAPACITY < INT_MAX */
    int rc = fn(session, packet, &srtp_len);
    if (rc != 0)
        return rc < 0 ? MW_SRTP_STATUS_BAD_RESULT : (int32_t)rc;
    if (srtp_len < 0 || (uint32_t)srtp_len > capacity)
        return MW_SRTP_STATUS_BAD_RESULT;
    *length = (uint32_t)srtp_len;
    return MW_SRTP_STATUS_OK;
}

static int run_batch(enum srtp_op op, const struct mw_srtp_api *api, void *session,
                     void *const *sessions, uint8_t *slab, size_t slab_len,
                     const size_t *offsets, uint32_t *lengths, const uint32_t *capacities,
                     uint32_t n, int32_t *status)
{
    if (api == NULL || slab == NULL || offsets == NULL || lengths == NULL ||
        capacities == NULL || status == NULL || n > INT32_MAX)
        return MW_SRTP_ERR_ARGS;
    mw_srtp_fn fn = function_of(api, op);
    if (fn == NULL)
        return MW_SRTP_ERR_ARGS;
    if (!check_slots(slab, slab_len, offsets, capacities, n, status))
        return MW_SRTP_ERR_ARGS;
    struct op_traits traits = traits_of(op);
    int done = 0;
    for (uint32_t i = 0; i < n; i++) {
        void *s = sessions != NULL ? sessions[i] : session;
        status[i] = run_one(fn, traits, s, slab + offsets[i], &lengths[i], capacities[i]);
        if (status[i] == MW_SRTP_STATUS_OK)
            done++;
    }
    return done;
}

int mw_srtp_protect_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                          size_t slab_len, const size_t *offsets, uint32_t *lengths,
                          const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_batch(OP_PROTECT, api, session, NULL, slab, slab_len, offsets, lengths,
                     capacities, n, status);
}

int mw_srtp_unprotect_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                            size_t slab_len, const size_t *offsets, uint32_t *lengths,
                            const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_batch(OP_UNPROTECT, api, session, NULL, slab, slab_len, offsets, lengths,
                     capacities, n, status);
}

int mw_srtp_protect_rtcp_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                               size_t slab_len, const size_t *offsets, uint32_t *lengths,
                               const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_batch(OP_PROTECT_RTCP, api, session, NULL, slab, slab_len, offsets, lengths,
                     capacities, n, status);
}

int mw_srtp_unprotect_rtcp_batch(const struct mw_srtp_api *api, void *session, uint8_t *slab,
                                 size_t slab_len, const size_t *offsets, uint32_t *lengths,
                                 const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_batch(OP_UNPROTECT_RTCP, api, session, NULL, slab, slab_len, offsets, lengths,
                     capacities, n, status);
}

/* The per-packet-session variants: a NULL sessions array is an argument error, not "all
 * skipped" (run_batch would otherwise fall back to its NULL single session). */
static int run_each(enum srtp_op op, const struct mw_srtp_api *api, void *const *sessions,
                    uint8_t *slab, size_t slab_len, const size_t *offsets, uint32_t *lengths,
                    const uint32_t *capacities, uint32_t n, int32_t *status)
{
    if (sessions == NULL)
        return MW_SRTP_ERR_ARGS;
    return run_batch(op, api, NULL, sessions, slab, slab_len, offsets, lengths, capacities, n,
                     status);
}

int mw_srtp_protect_each(const struct mw_srtp_api *api, void *const *sessions, uint8_t *slab,
                         size_t slab_len, const size_t *offsets, uint32_t *lengths,
                         const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_each(OP_PROTECT, api, sessions, slab, slab_len, offsets, lengths, capacities, n,
                    status);
}

int mw_srtp_unprotect_each(const struct mw_srtp_api *api, void *const *sessions, uint8_t *slab,
                           size_t slab_len, const size_t *offsets, uint32_t *lengths,
                           const uint32_t *capacities, uint32_t n, int32_t *status)
{
    return run_each(OP_UNPROTECT, api, sessions, slab, slab_len, offsets, lengths, capacities,
                    n, status);
}

int mw_srtp_protect_rtcp_each(const struct mw_srtp_api *api, void *const *sessions,
                              uint8_t *slab, size_t slab_len, const size_t *offsets,
                              uint32_t *lengths, const uint32_t *capacities, uint32_t n,
                              int32_t *status)
{
    return run_each(OP_PROTECT_RTCP, api, sessions, slab, slab_len, offsets, lengths,
                    capacities, n, status);
}

int mw_srtp_unprotect_rtcp_each(const struct mw_srtp_api *api, void *const *sessions,
                                uint8_t *slab, size_t slab_len, const size_t *offsets,
                                uint32_t *lengths, const uint32_t *capacities, uint32_t n,
                                int32_t *status)
{
    return run_each(OP_UNPROTECT_RTCP, api, sessions, slab, slab_len, offsets, lengths,
                    capacities, n, status);
}
