/* mediaworker hot path: RTP header parse and in-place rewrite, header extensions, RTX (RFC 3550, 8285, 4588).
 *
 * Every function takes untrusted bytes. Parsing never reads outside buf[0, len); the in-place
 * functions never write outside buf[0, cap), where cap is the writable capacity of the buffer (a
 * pool slot's size) and len the packet's length in it. They return the packet's new length, or a
 * negative enum mw_rtp_status. An in-place function parses the packet first (a malformed packet is
 * refused with its parse reason and left untouched) and, when `out` is not NULL, leaves in *out the
 * parse of the rewritten packet. On a failure, *out is unspecified and the packet is unchanged.
 *
 * Header extensions (RFC 8285): profile 0xBEDE is the one-byte form (ids 1-14, values 1-16 bytes;
 * a 0 byte is padding; id 15 ends the walk and the bytes after it are ignored); profile 0x100X is
 * the two-byte form (ids 1-255, values 0-255 bytes; a 0 byte is padding; X is kept as "appbits").
 * Any other profile is an opaque block, kept with its offset and length only.
 *
 * When an in-place function has to rebuild the extension block (an element added, removed, or
 * resized, or the form changed) it writes the canonical block: the elements in their order, packed,
 * then zero bytes up to a multiple of 4. The block keeps the two-byte form (and its appbits) if it
 * had it; otherwise it uses the one-byte form when every element fits it (id 1-14, 1-16 bytes),
 * else the two-byte form. A block left with no element is removed and the X bit cleared.
 */
#ifndef MW_RTP_H
#define MW_RTP_H

#include <stddef.h>
#include <stdint.h>

enum mw_rtp_limits {
    MW_RTP_FIXED_HEADER_BYTES = 12,
    MW_RTP_MAX_EXT_ELEMENTS = 16,      /* elements stored in struct mw_rtp_header.ext */
    MW_RTP_ONE_BYTE_PROFILE = 0xBEDE,
    MW_RTP_TWO_BYTE_PROFILE = 0x1000,  /* 0x1000-0x100F; the low nibble is "appbits" */
    MW_RTP_ONE_BYTE_MAX_ID = 14,
    MW_RTP_ONE_BYTE_MAX_VALUE = 16,
    MW_RTP_TWO_BYTE_MAX_ID = 255,
    MW_RTP_TWO_BYTE_MAX_VALUE = 255,
    MW_RTP_REMAP_TABLE_BYTES = 256,
    MW_RTP_MAX_PACKET_BYTES = 0x7FFF0000  /* longer buffers are refused, so lengths fit an int */
};

/* What the extension block is (struct mw_rtp_header.ext_form). */
enum mw_rtp_ext_form {
    MW_RTP_EXT_NONE = 0,
    MW_RTP_EXT_ONE_BYTE = 1,
    MW_RTP_EXT_TWO_BYTE = 2,
    MW_RTP_EXT_OPAQUE = 3
};

/* Which fixed-header fields a rewrite sets (a bit mask). */
enum mw_rtp_field {
    MW_RTP_SET_SSRC = 1,
    MW_RTP_SET_SEQ = 2,
    MW_RTP_SET_TIMESTAMP = 4,
    MW_RTP_SET_PAYLOAD_TYPE = 8,
    MW_RTP_SET_MARKER = 16,
    MW_RTP_SET_ALL = 31
};

/* Results. Parse reasons are checked in this order; a packet gets the first that applies. */
enum mw_rtp_status {
    MW_RTP_OK = 0,
    MW_RTP_ERR_TOO_SHORT = -1,              /* fewer than 12 bytes */
    MW_RTP_ERR_BAD_VERSION = -2,            /* version is not 2 */
    MW_RTP_ERR_CSRC_PAST_END = -3,          /* the CSRC list runs past the end */
    MW_RTP_ERR_EXT_PAST_END = -4,           /* the extension header or block runs past the end */
    MW_RTP_ERR_BAD_EXT_ELEMENT = -5,        /* an element overruns its block, or has id 0 */
    MW_RTP_ERR_PADDING_ZERO = -6,           /* P is set and the padding count byte is 0 */
    MW_RTP_ERR_PADDING_PAST_PAYLOAD = -7,   /* the padding is longer than the payload */
    MW_RTP_ERR_BAD_ARGUMENT = -20,          /* NULL, cap < len, len too big, a value out of range */
    MW_RTP_ERR_NO_ROOM = -21,               /* the rewritten packet would not fit in cap bytes */
    MW_RTP_ERR_EXT_NOT_FOUND = -22,         /* no element with this id */
    MW_RTP_ERR_EXT_EXISTS = -23,            /* add: an element with this id is already there */
    MW_RTP_ERR_EXT_LENGTH_MISMATCH = -24,   /* set: the new value's length differs */
    MW_RTP_ERR_EXT_OPAQUE = -25,            /* the extension block is not in an RFC 8285 form */
    MW_RTP_ERR_EXT_TOO_MANY = -26,          /* more elements than MW_RTP_MAX_EXT_ELEMENTS */
    MW_RTP_ERR_RTX_TOO_SHORT = -27,         /* decapsulate: payload shorter than the 2-byte OSN */
    MW_RTP_ERR_OUT_OF_BOUNDS = -28          /* batch: the packet lies outside the base buffer */
};

/* One RFC 8285 element: its id, and its value's offset (from the packet's start) and length. */
struct mw_rtp_ext_element {
    uint32_t offset;
    uint16_t length;
    uint8_t id;
    uint8_t reserved;
};

/* A parsed RTP header; offsets are from the packet's start. Reusable: parse overwrites it. */
struct mw_rtp_header {
    uint8_t version;
    uint8_t padding;            /* P bit */
    uint8_t extension;          /* X bit */
    uint8_t csrc_count;
    uint8_t marker;
    uint8_t payload_type;
    uint16_t sequence_number;
    uint32_t timestamp;
    uint32_t ssrc;
    uint32_t payload_offset;    /* fixed header + CSRCs + extension block */
    uint32_t payload_length;    /* without padding */
    uint32_t padding_length;    /* including the count byte; 0 when P is clear */
    uint16_t ext_profile;       /* 0 when X is clear */
    uint8_t ext_form;           /* enum mw_rtp_ext_form */
    uint8_t ext_stored;         /* elements stored in ext[] */
    uint32_t ext_offset;        /* of the block's data, after its 4-byte header */
    uint32_t ext_length;        /* of the block's data, in bytes (a multiple of 4) */
    uint32_t ext_count;         /* RFC 8285 elements in the block (may exceed ext_stored) */
    struct mw_rtp_ext_element ext[16];  /* MW_RTP_MAX_EXT_ELEMENTS, in packet order */
};

/* Parse buf[0, len). Returns MW_RTP_OK or a parse reason; *out is complete only on MW_RTP_OK.
 * `out` may be NULL to only check the packet. */
int mw_rtp_parse(const uint8_t *buf, size_t len, struct mw_rtp_header *out);

/* Index in h->ext of the first stored element with this id, or -1. */
int mw_rtp_ext_find(const struct mw_rtp_header *h, unsigned int id);

/* Set the fixed-header fields named in `fields` (enum mw_rtp_field) in one call. Returns len. */
int mw_rtp_rewrite(uint8_t *buf, size_t len, uint32_t fields, uint32_t ssrc, uint32_t seq,
                   uint32_t timestamp, uint32_t payload_type, uint32_t marker,
                   struct mw_rtp_header *out);

/* Overwrite the value of the element `id`; the new value must have the old one's length. */
int mw_rtp_ext_set(uint8_t *buf, size_t len, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out);

/* Set the element `id` to `value`, of any length: overwritten in place when the length is the
 * same, otherwise the block is rebuilt (the element keeps its place; appended if it was absent). */
int mw_rtp_ext_put(uint8_t *buf, size_t len, size_t cap, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out);

/* Append a new element (the block is created if the packet had none). */
int mw_rtp_ext_add(uint8_t *buf, size_t len, size_t cap, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out);

/* Give every element the id table[id] (256 entries; 0 removes the element). Only the id bytes
 * change when nothing is removed and the form can stay; otherwise the block is rebuilt. A packet
 * without extension is returned as is. */
int mw_rtp_ext_remap(uint8_t *buf, size_t len, size_t cap, const uint8_t *table,
                     struct mw_rtp_header *out);

/* RFC 4588: move payload and padding 2 bytes on, write the original sequence number in front of
 * the payload, then set the RTX stream's SSRC, payload type and sequence number.
 * Returns len + 2. */
int mw_rtp_rtx_encapsulate(uint8_t *buf, size_t len, size_t cap, uint32_t rtx_ssrc,
                           uint32_t rtx_payload_type, uint32_t rtx_seq, struct mw_rtp_header *out);

/* The inverse: restore the original sequence number from the payload's first 2 bytes, remove
 * them, and set the original SSRC and payload type. Returns len - 2. */
int mw_rtp_rtx_decapsulate(uint8_t *buf, size_t len, uint32_t ssrc, uint32_t payload_type,
                           struct mw_rtp_header *out);

/* Parse `count` packets at base + offsets[i], lengths[i] bytes each, inside base[0, base_len).
 * Fills the per-packet arrays (all zero for a malformed packet) and status[i] (MW_RTP_OK or the
 * reason). Returns the number of well-formed packets. */
size_t mw_rtp_parse_batch(const uint8_t *base, size_t base_len, const uint32_t *offsets,
                          const uint32_t *lengths, size_t count, uint32_t *ssrc, uint16_t *seq,
                          uint32_t *timestamp, uint8_t *payload_type, uint8_t *marker,
                          uint32_t *payload_offset, uint32_t *payload_length, int32_t *status);

/* The same, filling one full struct mw_rtp_header per packet (extension elements included). */
size_t mw_rtp_parse_batch_headers(const uint8_t *base, size_t base_len, const uint32_t *offsets,
                                  const uint32_t *lengths, size_t count,
                                  struct mw_rtp_header *headers, int32_t *status);

/* Rewrite the fields named in `fields` of `count` packets, taking packet i's new values from the
 * arrays (an array whose field is not in `fields` may be NULL). status[i] as for mw_rtp_rewrite.
 * Returns the number of packets rewritten. */
size_t mw_rtp_rewrite_batch(uint8_t *base, size_t base_len, const uint32_t *offsets,
                            const uint32_t *lengths, size_t count, uint32_t fields,
                            const uint32_t *ssrc, const uint16_t *seq, const uint32_t *timestamp,
                            const uint8_t *payload_type, const uint8_t *marker, int32_t *status);

#endif
