/* mediaworker hot path: the whole receive path of one UDP socket in one call per wake-up.
 *
 * mw_ingress_run is what a readable media socket costs in the steady state: it takes slots from
 * the receive pool (mw_pool), receives a batch into them (recvmmsg), and walks the datagrams in
 * order. A datagram is *taken* by the C when it is RTP from the source address of one of the
 * socket's routes (a transport's remote tuple), of a producer stream that Python has enabled
 * on that route, and nothing about it needs a decision: then the C
 * SRTP-unprotects it, parses it, does the stream's receive statistics (mw_recv_stream_receive),
 * advances the NACK generator's highest sequence number, copies it into the producer's
 * retransmission store (a slot of the output pool, mw_store_insert) and queues it; at the end
 * each route's queue is fanned out to every consumer (mw_forward_batch, output slots from the
 * output pool) and sent (mw_forward_send), and every slot goes back to its pool.
 *
 * The first datagram that needs Python stops the walk (result->slow_from), with the batch's
 * slots still lent: Python handles that one datagram (and sends what it queued), then calls
 * mw_ingress_resume to go on from the next one, and so on; mw_ingress_release gives the slots
 * back at the end. So packets of one stream are never reordered, and each side always sees
 * the state the other left. A datagram needs Python when it is not RTP (RTCP, STUN, DTLS),
 * comes from an address of no route (or there is no remote yet: comedia), was truncated,
 * is not a parsable RTP packet, has an SSRC of no enabled stream (RTX, a new stream, an unknown
 * one), a payload type the producer does not have, no payload (padding), starts a key frame, or
 * is not the next sequence number while the stream has a NACK generator (or its NACK list has
 * an entry due for its first request, or one too old to keep). The packet's SRTP is already removed when it is left to Python after the C
 * unprotected it: flags[i] has MW_INGRESS_UNPROTECTED and lengths[i] is the plain length.
 *
 * Python owns every decision: it builds the routes (one per transport receiving on the
 * socket: the one source address it takes packets from, its SRTP session, its forward table),
 * their stream entries (which streams are enabled: not paused, no consumer waiting for a key
 * frame, every active consumer reached through a socket, ...), and reads the counters.
 *
 * Memory: the C reads and writes only the pools' slabs and arrays, the arrays named here and
 * the structs they point at. Never allocates. */
#ifndef MW_INGRESS_H
#define MW_INGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "forward.h"
#include "pool.h"
#include "recv_stream.h"
#include "sockio.h"
#include "srtp.h"
#include "store.h"

enum mw_ingress_limits {
    MW_INGRESS_BATCH = 64,        /* datagrams one run receives at most */
    MW_INGRESS_MIN_WANT = 4,      /* the adaptive batch size never goes below this */
    MW_INGRESS_UNPROTECTED = 0x80, /* flags[i]: the C removed this datagram's SRTP */
    MW_INGRESS_NACK_MAX_PACKET_AGE = 10000 /* NackGenerator's NACK_MAX_PACKET_AGE */
};

/* What NackGenerator (worker/nack_generator.py) shares with the C: its highest sequence
 * number, the size of its list, when its next first request falls due and its oldest entry.
 * The next packet in order changes nothing in the generator but the highest number as long as
 * no entry is due for its first request (now < next_ask_ms) and none is too old to keep
 * (oldest >= that packet's number - MW_INGRESS_NACK_MAX_PACKET_AGE): then the C takes it and
 * only advances last_seq, even while packets are missing. */
struct mw_nack_state {
    int64_t last_seq;     /* extended highest sequence number seen; meaningful when has_last */
    uint8_t has_last;
    uint8_t reserved[3];
    uint32_t pending;     /* entries in the NACK list */
    int64_t next_ask_ms;  /* when an entry never asked for becomes due (INT64_MAX: none) */
    int64_t oldest;       /* extended sequence number of the oldest entry (when pending) */
};

/* One producer stream the C may take packets of (set by Python). */
struct mw_ingress_stream {
    uint32_t ssrc;                  /* the stream's media SSRC */
    uint8_t enabled;                /* 0: every packet of this SSRC goes to Python */
    uint8_t keyframe_codec;         /* enum mw_keyframe_codec; a key frame goes to Python */
    uint8_t forward;                /* 1: the stream has consumers in the table */
    uint8_t reserved;
    uint8_t pt_ok[128];             /* non-zero: the producer has this payload type */
    struct mw_recv_stream *stats;   /* the stream's receive statistics */
    struct mw_nack_state *nack;     /* NULL: no NACK generator */
    struct mw_store *store;         /* NULL: packets are not stored */
    uint64_t packets;               /* packets the C took */
};

/* One transport's part of a socket: the packets of one source address (the transport's remote
 * tuple, or its selected ICE tuple). Set by Python when the routing changes; counters by the C.
 * A socket a WebRtcServer shares has one route per transport that receives media on it. */
struct mw_ingress_route {
    struct mw_sockio_addr remote;   /* the one source this route takes packets from */
    uint8_t srtp;                   /* 1: packets are SRTP (srtp_in and api are set) */
    uint8_t reserved[3];
    uint32_t queued;                /* packets queued for the fan-out in this walk */
    const struct mw_srtp_api *api;
    void *srtp_in;                  /* the transport's inbound libsrtp session (srtp_t) */
    struct mw_ingress_stream *streams;
    uint32_t stream_count;
    uint32_t reserved2;
    /* the fan-out (the transport's MediaIngress: its table and ForwardBatch areas) */
    struct mw_forward_table *table;
    struct mw_forward_input *fwd_in;
    struct mw_forward_output *fwd_out;   /* free_slots is written by the C */
    uint32_t *free_slots;                /* fwd_out->capacity entries */
    struct mw_forward_send_area *area;
    struct mw_forward_result *fwd_result;
    struct mw_forward_send_result *send_result;
    uint32_t *queue_slots;               /* MW_INGRESS_BATCH entries */
    uint32_t *queue_lengths;
    /* counters: datagrams and packets the C took (Python counts the others) */
    uint64_t datagrams;       /* received from `remote` and taken (or dropped) by the C */
    uint64_t bytes;           /* their bytes as received */
    uint64_t rtp_received;    /* taken and parsed */
    uint64_t rtp_bytes;       /* their bytes after SRTP */
    uint64_t srtp_failed;     /* dropped: SRTP authentication or replay */
    uint64_t forwarded;       /* output packets made */
    uint64_t send_dropped;    /* outputs the kernel refused or that were left */
    uint64_t out_of_slots;    /* input packets not fanned out: no output slot */
    uint64_t store_no_buffer; /* packets not stored: no output slot */
};

/* One socket's receive path. Set by Python once (arrays, pools) and when its routes change. */
struct mw_ingress {
    int32_t fd;
    uint32_t want;                  /* datagrams to ask for next (adapted by the C) */
    struct mw_pool *in_pool;        /* udpRecv */
    struct mw_pool *out_pool;       /* rtpPacket: stored copies and outputs */
    /* the receive batch (RecvBatch's arrays, MW_INGRESS_BATCH entries each) */
    uint32_t *slots;
    uint32_t *lengths;
    struct mw_sockio_addr *addrs;
    uint8_t *flags;
    uint8_t *kinds;
    uint32_t lent;                  /* slots of the last run still lent (mw_ingress_release) */
    uint32_t received;              /* datagrams of the last run */
    /* the routes that may take packets, sorted by remote: family, then port, then the
     * address bytes (none: everything goes to Python) */
    struct mw_ingress_route **routes;
    uint32_t route_count;
    uint32_t touched_count;
    struct mw_ingress_route **touched;   /* MW_INGRESS_BATCH entries: routes that queued */
    uint64_t no_recv_slots;   /* runs that found the receive pool empty */
    uint64_t runs;
};

/* What one run did. */
struct mw_ingress_result {
    uint32_t received;   /* datagrams received (0: empty socket, error, or no slots) */
    uint32_t slow_from;  /* datagrams [slow_from, received) are Python's */
    int32_t err;         /* errno of the receive (EAGAIN when empty), or ENOBUFS: no slots */
    uint32_t asked;      /* datagrams asked for (received == asked: the socket may hold more) */
};

/* One wake-up's work (see the top of this file). now_ms is the caller's clock (the stream
 * statistics' time). Returns 0, or -1 for bad arguments (nothing done). When slow_from <
 * received, the batch's slots stay lent until mw_ingress_release; otherwise they are back. */
int mw_ingress_run(struct mw_ingress *g, int64_t now_ms, struct mw_ingress_result *result);

/* Go on with the last run's batch from datagram `from` (Python handled the one before): take
 * what needs no decision, fan it out and send it, stop at the next one that needs Python.
 * result->slow_from is that datagram (result->received when none is left); result->received
 * and result->asked are the run's. Returns 0, or -1 when there is no batch lent. */
int mw_ingress_resume(struct mw_ingress *g, uint32_t from, int64_t now_ms,
                      struct mw_ingress_result *result);

/* Give back the slots of the last run that Python handled. */
void mw_ingress_release(struct mw_ingress *g);

/* A route's place in the sorted routes: <0, 0 or >0 as `a` sorts before, with or after `b`. */
int mw_ingress_addr_cmp(const struct mw_sockio_addr *a, const struct mw_sockio_addr *b);

/* The abs-send-time value of the real-time clock now (24 bits: 6.18 fixed-point seconds). */
uint32_t mw_ingress_abs_send_time(void);

#endif
