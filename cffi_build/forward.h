/* mediaworker hot path: the SFU fan-out of one received batch, in one call.
 *
 * mw_forward_batch takes a batch of received RTP packets (already SRTP-unprotected, or plain) in
 * the slots of one slab (as mw_sockio_recv_batch left them), a routing table built by the Python
 * side (worker/_fast/forward.py) and a list of free slots of an output slab (the rtpPacket
 * pool). For each input packet it parses the header (mw_rtp_parse), finds the producer stream by
 * SSRC (binary search in a sorted array) and, for each of the stream's consumers that is not
 * paused and whose payload-type map keeps the packet, copies it into the next free output slot,
 * rewrites SSRC, sequence number (+ offset, mod 2^16), timestamp (+ offset, mod 2^32), payload
 * type and, when the consumer has a map, header-extension ids (mw_rtp_ext_remap), writes its
 * egress extensions (below), SRTP-protects it with the consumer's session (libsrtp through
 * struct mw_srtp_api, as in srtp.h) and appends (offset, length, destination) to output arrays
 * laid out as worker._fast.SendBatch's, so that one mw_sockio_send_batch can send everything
 * through one socket, or mw_forward_send through each destination's own. The marker bit,
 * CSRCs, padding and payload are kept.
 *
 * Output slots are used in the order of out->free_slots: output k is in slot free_slots[k] at
 * offset free_slots[k] * slot_size, and result->outputs says how many were used (the caller
 * gives the rest back to its pool). A packet is fanned out entirely or not at all: before a
 * packet, if fewer slots (or output entries) are left than it has active consumers, the batch
 * stops there; result->stopped_at names that input packet and result->out_of_slots counts the
 * input packets not handled. An output whose rewrite or protect fails is not recorded: its slot
 * is used by the next output, and the failure is counted (and kept in the consumer entry).
 *
 * Memory: nothing is read outside [in->slab, in->slab + in->slab_len) nor written outside the
 * output slots named in free_slots[0, free_count), the output arrays' first `capacity` entries,
 * the consumer entries and the TWCC counters they point at. A bad argument (NULL array, a free
 * slot outside the output slab, a slot size not a multiple of 4 or a slab not 4-byte aligned, a
 * consumer with a session but no api, with a TWCC id but no counter, or with a MID id and a MID
 * length outside 1..16) refuses the whole batch with MW_FORWARD_ERR_ARGS before any byte is
 * written. A table entry that points
 * outside the table (a consumer range, an extension map, a destination) skips that consumer and
 * counts table_errors: a bug on the Python side, which raises. Never allocates.
 *
 * The consumer entries are written by the call (the last sequence number and timestamp sent,
 * counters), so Python reads them for SR and stats without a per-packet call. A session or a
 * TWCC counter must not be used by another thread while a batch runs (cffi releases the GIL
 * around the call).
 *
 * Egress header extensions, per consumer, after the id remap (so the ids are the consumer's)
 * and before SRTP, in this order:
 * - MID (mid_ext_id): the consumer's MID is put as that element (mw_rtp_ext_put: replaced when
 *   present, of any length; appended when absent; the block is created when there is none),
 *   within the slot less the SRTP trailer room. A packet it cannot be put in (no room, an
 *   opaque extension block, more than 16 elements) is counted in rewrite_failed.
 * - abs-send-time (abs_send_time_ext_id): an element with that id and a 3-byte value is
 *   overwritten with table->abs_send_time (its low 24 bits, big-endian). No element, or one of
 *   another length: the packet is left as it is.
 * - transport-wide sequence number (twcc_ext_id): an element with that id and a 2-byte value
 *   gets *twcc_seq + 1 (mod 2^16, big-endian), and *twcc_seq takes that value once the output
 *   is recorded (a failed output uses no number). The counter is the last number used; several
 *   consumers (and tables) of one transport point at the same counter.
 * Only the first 16 elements (struct mw_rtp_header's) are looked at.
 *
 * Sending (mw_forward_send): each destination has a socket, table->dest_fds[d] (-1: none).
 * After a batch, mw_forward_send sends its outputs [0, n): those whose destination has a socket
 * with one mw_sockio_send_batch per socket (the sockets in the order of their first output, the
 * outputs of one socket in their order), gathered in caller-provided arrays; those without one
 * are not sent: their indices are written to area->deferred, for the caller (TCP). */
#ifndef MW_FORWARD_H
#define MW_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "sockio.h"
#include "srtp.h"

enum mw_forward_limits {
    MW_FORWARD_PT_MAP_BYTES = 128,   /* input payload type -> output payload type */
    MW_FORWARD_PT_DROP = 0xFF,       /* a pt_map value: consumers do not get this payload type */
    MW_FORWARD_EXT_MAP_BYTES = 256,  /* one header-extension id map (as mw_rtp_ext_remap's) */
    MW_FORWARD_MID_MAX_BYTES = 16,   /* a MID value, as the one-byte extension form allows */
    MW_FORWARD_ABS_SEND_TIME_BYTES = 3,
    MW_FORWARD_TWCC_BYTES = 2,
    MW_FORWARD_NO_FD = -1            /* a table->dest_fds value: the caller sends it itself */
};

enum mw_forward_status {
    MW_FORWARD_OK = 0,
    MW_FORWARD_ERR_ARGS = -1 /* nothing was read or written; a bug in the caller */
};

/* One consumer of one producer stream. The first block is set by Python; the second by the C. */
struct mw_forward_consumer {
    uint32_t ssrc;        /* output SSRC */
    uint32_t ts_offset;   /* added to the timestamp, mod 2^32 */
    uint16_t seq_offset;  /* added to the sequence number, mod 2^16 */
    uint8_t paused;       /* non-zero: skipped (counted in result->paused) */
    uint8_t remap_ext;    /* non-zero: give extension ids through ext_maps[ext_map] */
    uint32_t ext_map;     /* index into table->ext_maps (when remap_ext) */
    uint32_t dest;        /* index into table->dests */
    void *srtp;           /* the consumer's outbound libsrtp session (srtp_t), NULL: plain */
    uint8_t pt_map[128];  /* MW_FORWARD_PT_MAP_BYTES; values 0-127 or MW_FORWARD_PT_DROP */
    uint16_t *twcc_seq;   /* the transport's TWCC counter (last number used); set with twcc_ext_id */
    uint8_t mid_ext_id;   /* MID extension id (1-255), 0: no MID written */
    uint8_t mid_len;      /* 1..MW_FORWARD_MID_MAX_BYTES when mid_ext_id is set */
    uint8_t abs_send_time_ext_id; /* abs-send-time extension id, 0: left alone */
    uint8_t twcc_ext_id;  /* transport-wide-cc extension id, 0: left alone */
    uint8_t mid[16];      /* MW_FORWARD_MID_MAX_BYTES; the first mid_len bytes are the MID */
    /* written by mw_forward_batch: */
    uint32_t last_ts;     /* timestamp of the last packet sent (after the offset) */
    uint16_t last_seq;    /* sequence number of the last packet sent (after the offset) */
    uint8_t sent_any;     /* 1 once a packet was sent: last_seq/last_ts are meaningful */
    uint8_t reserved2;
    uint64_t packets;     /* packets sent (recorded in the output arrays) */
    uint64_t bytes;       /* their RTP bytes, before SRTP */
    uint64_t dropped_pt;  /* packets the pt_map dropped */
    uint64_t failures;    /* rewrite and SRTP failures */
    int32_t last_error;   /* the last failure: a negative mw_rtp_status or an srtp status */
    uint32_t reserved3;
};

/* The received batch: packet i is lengths[i] bytes at slab + slots[i] * slot_size. */
struct mw_forward_input {
    const uint8_t *slab;
    size_t slab_len;
    size_t slot_size;
    const uint32_t *slots;
    const uint32_t *lengths;
    uint32_t count;
};

/* The routing table. ssrcs[] is sorted ascending without duplicates and ssrcs[i] belongs to
 * producer stream streams[i]; stream s has the consumers [first[s], first[s] + count[s]) of
 * consumers[]. ext_maps holds ext_map_count maps of 256 bytes; dests holds dest_count addresses
 * (may be NULL when dest_count is 0 and out->addrs is NULL) and dest_fds their sockets (-1:
 * none; only mw_forward_send reads it, and may be NULL when dest_count is 0). api may be NULL
 * when no consumer has a session. abs_send_time is the abs-send-time value written in this
 * run's packets (24-bit 6.18 fixed-point seconds; the caller sets it before each run). */
struct mw_forward_table {
    const uint32_t *ssrcs;
    const uint32_t *streams;
    uint32_t ssrc_count;
    uint32_t stream_count;
    const uint32_t *first;
    const uint32_t *count;
    struct mw_forward_consumer *consumers;
    uint32_t consumer_count;
    uint32_t ext_map_count;
    const uint8_t *ext_maps;
    const struct mw_sockio_addr *dests;
    const int32_t *dest_fds;
    uint32_t dest_count;
    uint32_t abs_send_time;
    const struct mw_srtp_api *api;
};

/* The output area: free slots of the output slab, and SendBatch-shaped arrays of `capacity`
 * entries. addrs (a copy of table->dests[consumer.dest]) and dest_index may each be NULL. */
struct mw_forward_output {
    uint8_t *slab;
    size_t slab_len;
    size_t slot_size;
    const uint32_t *free_slots;
    uint32_t free_count;
    uint32_t capacity;
    size_t *offsets;
    uint32_t *lengths;
    struct mw_sockio_addr *addrs;
    uint32_t *dest_index;
};

/* What one batch did. Every input packet before stopped_at is counted once in exactly one of
 * malformed, unknown_ssrc or handled; outputs == forwarded. */
struct mw_forward_result {
    uint32_t outputs;        /* entries written to the output arrays = free slots used */
    uint32_t stopped_at;     /* first input packet not handled (count when all were) */
    uint32_t handled;        /* input packets of a known producer, fanned out */
    uint32_t forwarded;      /* output packets recorded */
    uint32_t malformed;      /* input packets outside their slot or not RTP (mw_rtp_parse) */
    uint32_t unknown_ssrc;   /* input packets whose SSRC is in no producer stream */
    uint32_t dropped_pt;     /* outputs not made: the consumer's pt_map drops the payload type */
    uint32_t paused;         /* outputs not made: the consumer is paused */
    uint32_t out_of_slots;   /* input packets not handled: count - stopped_at */
    uint32_t too_big;        /* outputs not made: the packet (+ SRTP trailer) exceeds a slot */
    uint32_t rewrite_failed; /* outputs not made: the extension remap or the MID put failed */
    uint32_t srtp_failed;    /* outputs not made: libsrtp refused to protect */
    uint32_t table_errors;   /* consumers skipped because their entry points outside the table */
};

/* Fan out one received batch (see the top of this file). Returns MW_FORWARD_OK with *result
 * filled, or MW_FORWARD_ERR_ARGS with *result zeroed and nothing written. */
int mw_forward_batch(const struct mw_forward_input *in, struct mw_forward_table *table,
                     const struct mw_forward_output *out, struct mw_forward_result *result);

/* The caller's arrays for mw_forward_send, each of `capacity` entries. The first four are
 * scratch (their content after the call means nothing); deferred is the answer. */
struct mw_forward_send_area {
    uint32_t capacity;
    size_t *offsets;              /* one socket's messages, as mw_sockio_send_batch takes them */
    uint32_t *lengths;
    struct mw_sockio_addr *addrs;
    uint32_t *pending;            /* outputs not yet sent */
    uint32_t *deferred;           /* written: the outputs whose destination has no socket */
};

/* What mw_forward_send did: sent + dropped + left + deferred == n. */
struct mw_forward_send_result {
    uint32_t sent;      /* accepted by the kernel */
    uint32_t dropped;   /* refused one by one (see mw_sockio_send_batch) and skipped */
    uint32_t left;      /* not sent: their socket would block or failed (the last outputs of
                           that socket; the other sockets are still tried) */
    uint32_t deferred;  /* destination without a socket: area->deferred[0, deferred) */
    uint32_t sockets;   /* mw_sockio_send_batch calls made (distinct sockets) */
    int32_t err;        /* errno that stopped the last socket that stopped, 0 if none */
    int32_t drop_err;   /* errno of the last dropped output, 0 if none */
    uint32_t reserved;
};

/* Send the outputs [0, n) of the last mw_forward_batch with this table and output area (out->
 * dest_index names each output's destination; out->addrs is not read). Output k is
 * out->lengths[k] bytes at out->slab + out->offsets[k], to table->dests[d] through the socket
 * table->dest_fds[d], d = out->dest_index[k]. Returns MW_FORWARD_OK with *result filled, or
 * MW_FORWARD_ERR_ARGS with *result zeroed and nothing sent: NULL arrays, n above out->capacity
 * or area->capacity, an output outside out->slab, a destination index outside the table, or a
 * destination with a socket but no address family. Never allocates; never blocks. */
int mw_forward_send(const struct mw_forward_table *table, const struct mw_forward_output *out,
                    uint32_t n, const struct mw_forward_send_area *area,
                    struct mw_forward_send_result *result);

#endif
