/* mediaworker hot path: RTCP compound walk, parsers and builders (RFC 3550, 4585, 5104, 3611, REMB, transport-cc). */
#ifndef MW_RTCP_H
#define MW_RTCP_H

#include <stddef.h>
#include <stdint.h>

/* RTCP packet types (RFC 3550, 4585, 3611). */
enum mw_rtcp_packet_type {
    MW_RTCP_PT_SR = 200,
    MW_RTCP_PT_RR = 201,
    MW_RTCP_PT_SDES = 202,
    MW_RTCP_PT_BYE = 203,
    MW_RTCP_PT_APP = 204,
    MW_RTCP_PT_RTPFB = 205,
    MW_RTCP_PT_PSFB = 206,
    MW_RTCP_PT_XR = 207
};

/* FMT values of transport-layer feedback (PT 205). */
enum mw_rtcp_rtpfb_fmt {
    MW_RTCP_RTPFB_NACK = 1,
    MW_RTCP_RTPFB_TCC = 15
};

/* FMT values of payload-specific feedback (PT 206); AFB carries REMB. */
enum mw_rtcp_psfb_fmt {
    MW_RTCP_PSFB_PLI = 1,
    MW_RTCP_PSFB_FIR = 4,
    MW_RTCP_PSFB_AFB = 15
};

/* Outcome of every walk, parse and build. Parsers return it; builders return its negation. */
enum mw_rtcp_error {
    MW_RTCP_OK = 0,
    MW_RTCP_ERR_EMPTY = 1,              /* walk: the buffer holds no byte at all */
    MW_RTCP_ERR_HEADER_TRUNCATED = 2,   /* fewer than 4 bytes left for a common header */
    MW_RTCP_ERR_VERSION = 3,            /* version field is not 2 */
    MW_RTCP_ERR_LENGTH = 4,             /* the length field runs past the end of the buffer */
    MW_RTCP_ERR_PADDING = 5,            /* P bit set, padding count 0 or larger than the body */
    MW_RTCP_ERR_WRONG_TYPE = 6,         /* parser given another packet type or FMT */
    MW_RTCP_ERR_TRUNCATED = 7,          /* body shorter than its fixed part or than its counts announce */
    MW_RTCP_ERR_ITEM_LENGTH = 8,        /* not a whole number of FCI entries, or a bad XR block length */
    MW_RTCP_ERR_NO_ITEMS = 9,           /* generic NACK or FIR without any FCI entry */
    MW_RTCP_ERR_SDES_UNTERMINATED = 10, /* SDES chunk without its null item and padding in the body */
    MW_RTCP_ERR_NOT_REMB = 11,          /* PSFB FMT 15 whose FCI does not start with "REMB" */
    MW_RTCP_ERR_TCC_RESERVED = 12,      /* transport-cc status symbol 3 (reserved) for a counted packet */
    MW_RTCP_ERR_NO_SPACE = 13,          /* builder: the output capacity is too small */
    MW_RTCP_ERR_INVALID_ARGUMENT = 14   /* builder: a count or a value is out of range */
};

/* Upper bounds fixed by the wire format. */
enum mw_rtcp_limits {
    MW_RTCP_MAX_COUNT = 31,        /* RC / SC field: report blocks, SDES chunks, BYE sources */
    MW_RTCP_MAX_TEXT = 255,        /* SDES item and BYE reason length */
    MW_RTCP_MAX_REMB_SSRCS = 255,
    MW_RTCP_MAX_TCC_PACKETS = 65535
};

/* One sub-packet of a compound packet, as found by mw_rtcp_walk. */
struct mw_rtcp_item {
    uint32_t offset;      /* first header byte, from the start of the walked buffer */
    uint32_t length;      /* total bytes with header and padding: 4 * (length field + 1) */
    uint32_t packet_type; /* PT, the second byte */
    uint32_t count;       /* low 5 bits of the first byte: RC, SC or FMT */
    uint32_t padding;     /* padding bytes at the end when the P bit is set, else 0 */
};

struct mw_rtcp_walk_result {
    uint32_t count;        /* valid sub-packets before the end or the first malformed one */
    uint32_t error;        /* enum mw_rtcp_error; MW_RTCP_OK when the whole buffer is valid */
    uint32_t error_offset; /* where the malformed sub-packet starts (the buffer length when OK) */
};

/* SR/RR report block (RFC 3550 6.4.1). packets_lost is the 24-bit signed cumulative count. */
struct mw_rtcp_report_block {
    uint32_t ssrc;
    uint32_t fraction_lost;
    int32_t packets_lost;
    uint32_t highest_seq;
    uint32_t jitter;
    uint32_t lsr;
    uint32_t dlsr;
};

struct mw_rtcp_sender_report {
    uint64_t ntp_timestamp;
    uint32_t ssrc;
    uint32_t rtp_timestamp;
    uint32_t packet_count;
    uint32_t octet_count;
    uint32_t report_count; /* RC: report blocks in the packet */
    uint32_t reserved;
};

struct mw_rtcp_receiver_report {
    uint32_t ssrc;
    uint32_t report_count;
};

/* One SDES chunk; the CNAME text stays in the packet at cname_offset (from the sub-packet start). */
struct mw_rtcp_sdes_chunk {
    uint32_t ssrc;
    uint32_t has_cname;
    uint32_t cname_offset;
    uint32_t cname_length;
};

struct mw_rtcp_bye {
    uint32_t source_count;
    uint32_t has_reason;
    uint32_t reason_offset; /* from the sub-packet start */
    uint32_t reason_length;
};

/* Common part of RTPFB/PSFB messages; item_count counts NACK items or FIR entries. */
struct mw_rtcp_feedback {
    uint32_t sender_ssrc;
    uint32_t media_ssrc;
    uint32_t item_count;
};

struct mw_rtcp_nack_item {
    uint16_t pid;
    uint16_t blp;
};

struct mw_rtcp_fir_entry {
    uint32_t ssrc;
    uint32_t seq;
};

/* REMB (draft-alvestrand-rmcat-remb): bitrate = mantissa << exponent, saturated at UINT64_MAX. */
struct mw_rtcp_remb {
    uint64_t bitrate;
    uint32_t sender_ssrc;
    uint32_t media_ssrc;
    uint32_t exponent;
    uint32_t mantissa;
    uint32_t ssrc_count;
    uint32_t reserved;
};

/* transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01). */
struct mw_rtcp_tcc {
    uint32_t sender_ssrc;
    uint32_t media_ssrc;
    uint32_t base_seq;
    uint32_t status_count;   /* packets described; statuses/deltas hold min(this, max) of them */
    int32_t reference_time;  /* 24-bit signed, in units of 64 ms */
    uint32_t fb_count;
    uint32_t received_count; /* packets with a receive delta */
    uint32_t chunk_count;
};

/* Status symbols of transport-cc. */
enum mw_rtcp_tcc_status {
    MW_RTCP_TCC_NOT_RECEIVED = 0,
    MW_RTCP_TCC_SMALL_DELTA = 1,
    MW_RTCP_TCC_LARGE_DELTA = 2
};

/* XR (RFC 3611): the first RRT block (type 4) and every DLRR sub-block (type 5). */
struct mw_rtcp_xr {
    uint64_t rrt_ntp;
    uint32_t sender_ssrc;
    uint32_t block_count; /* all report blocks, known or not */
    uint32_t has_rrt;
    uint32_t dlrr_count;  /* DLRR sub-blocks over all DLRR blocks */
};

struct mw_rtcp_dlrr {
    uint32_t ssrc;
    uint32_t lrr;
    uint32_t dlrr;
};

/* Walk a compound packet. Stores the first max_items valid sub-packets in items, reports how
 * many there are in out->count and returns the reason the walk stopped early (or MW_RTCP_OK). */
int mw_rtcp_walk(const uint8_t *buf, size_t len, struct mw_rtcp_item *items, uint32_t max_items,
                 struct mw_rtcp_walk_result *out);

/* Parsers take one sub-packet from its first header byte; len may run past it (the length field
 * decides). Variable parts go to caller arrays bounded by max_*; totals are always reported. */
int mw_rtcp_parse_sr(const uint8_t *pkt, size_t len, struct mw_rtcp_sender_report *out,
                     struct mw_rtcp_report_block *blocks, uint32_t max_blocks);
int mw_rtcp_parse_rr(const uint8_t *pkt, size_t len, struct mw_rtcp_receiver_report *out,
                     struct mw_rtcp_report_block *blocks, uint32_t max_blocks);
int mw_rtcp_parse_sdes(const uint8_t *pkt, size_t len, struct mw_rtcp_sdes_chunk *chunks,
                       uint32_t max_chunks, uint32_t *chunk_count);
int mw_rtcp_parse_bye(const uint8_t *pkt, size_t len, struct mw_rtcp_bye *out, uint32_t *ssrcs,
                      uint32_t max_ssrcs);
int mw_rtcp_parse_nack(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out,
                       struct mw_rtcp_nack_item *items, uint32_t max_items);
int mw_rtcp_parse_pli(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out);
int mw_rtcp_parse_fir(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out,
                      struct mw_rtcp_fir_entry *entries, uint32_t max_entries);
int mw_rtcp_parse_remb(const uint8_t *pkt, size_t len, struct mw_rtcp_remb *out, uint32_t *ssrcs,
                       uint32_t max_ssrcs);
int mw_rtcp_parse_tcc(const uint8_t *pkt, size_t len, struct mw_rtcp_tcc *out, uint8_t *statuses,
                      int32_t *deltas, uint32_t max_packets);
int mw_rtcp_parse_xr(const uint8_t *pkt, size_t len, struct mw_rtcp_xr *out,
                     struct mw_rtcp_dlrr *dlrr, uint32_t max_dlrr);

/* Expand NACK items into lost sequence numbers (PID, then PID+1+bit for each BLP bit, mod 2^16).
 * Stores at most max_out of them and returns how many there are. */
uint32_t mw_rtcp_nack_expand(const struct mw_rtcp_nack_item *items, uint32_t n, uint16_t *out,
                             uint32_t max_out);

/* Builders write one sub-packet at out (capacity cap) and return its length in bytes, or the
 * negated enum mw_rtcp_error. They never set the P bit, so their outputs can be concatenated. */
int mw_rtcp_build_sr(uint8_t *out, size_t cap, uint32_t ssrc, uint64_t ntp_timestamp,
                     uint32_t rtp_timestamp, uint32_t packet_count, uint32_t octet_count,
                     const struct mw_rtcp_report_block *blocks, uint32_t n);
int mw_rtcp_build_rr(uint8_t *out, size_t cap, uint32_t ssrc,
                     const struct mw_rtcp_report_block *blocks, uint32_t n);
/* CNAMEs are concatenated in cnames; chunk i's CNAME has cname_lengths[i] bytes. */
int mw_rtcp_build_sdes(uint8_t *out, size_t cap, const uint32_t *ssrcs, const uint8_t *cnames,
                       const uint32_t *cname_lengths, uint32_t n);
/* reason_length < 0: no reason field at all. */
int mw_rtcp_build_bye(uint8_t *out, size_t cap, const uint32_t *ssrcs, uint32_t n,
                      const uint8_t *reason, int32_t reason_length);
/* lost: sequence numbers in RTP order (ascending modulo 2^16), packed greedily into PID+BLP. */
int mw_rtcp_build_nack(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       const uint16_t *lost, uint32_t n);
int mw_rtcp_build_pli(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc);
int mw_rtcp_build_fir(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                      const struct mw_rtcp_fir_entry *entries, uint32_t n);
/* The bitrate is stored with the smallest exponent whose mantissa fits 18 bits (rounded down). */
int mw_rtcp_build_remb(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       uint64_t bitrate, const uint32_t *ssrcs, uint32_t n);
/* Packet i (sequence base_seq + i) was received when received[i] != 0, with deltas[i] in
 * 250 us ticks (0..255 small, else int16 large). Zero-padded to 32 bits without the P bit. */
int mw_rtcp_build_tcc(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                      uint32_t base_seq, int32_t reference_time, uint32_t fb_count,
                      const uint8_t *received, const int32_t *deltas, uint32_t n);
/* An RRT block when has_rrt, then one DLRR block when n > 0. */
int mw_rtcp_build_xr(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t has_rrt,
                     uint64_t rrt_ntp, const struct mw_rtcp_dlrr *dlrr, uint32_t n);

#endif
