/* mediaworker hot path: RTP header parse and in-place rewrite, header extensions, RTX (RFC 3550, 8285, 4588).
 *
 * Every length is checked before the read or write it guards; a subtraction is only done once the
 * comparison that keeps it non-negative has been made. No function allocates. */
#include "rtp.h"

#include <string.h>

_Static_assert(sizeof(((struct mw_rtp_header *)0)->ext) / sizeof(struct mw_rtp_ext_element)
                   == MW_RTP_MAX_EXT_ELEMENTS,
               "struct mw_rtp_header.ext must hold MW_RTP_MAX_EXT_ELEMENTS elements");

/* The largest rebuilt extension block: its header, every stored element plus one added, each at
 * its largest two-byte size, and 3 bytes of padding. Built on the stack, then copied in place. */
enum {
    EXT_BLOCK_MAX_BYTES = 4 + (MW_RTP_MAX_EXT_ELEMENTS + 1) * (2 + MW_RTP_TWO_BYTE_MAX_VALUE) + 3
};

static inline uint16_t read16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static inline uint32_t read32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void write16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void write32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- parse ------------------------------------------------------------------------------- */

static void note_element(struct mw_rtp_header *h, unsigned int id, size_t offset, size_t length)
{
    if (h->ext_stored < MW_RTP_MAX_EXT_ELEMENTS) {
        struct mw_rtp_ext_element *e = &h->ext[h->ext_stored++];
        e->offset = (uint32_t)offset;
        e->length = (uint16_t)length;
        e->id = (uint8_t)id;
        e->reserved = 0;
    }
    h->ext_count++;
}

/* One-byte form, data in buf[pos, end). */
static int parse_one_byte(const uint8_t *buf, size_t pos, size_t end, struct mw_rtp_header *h)
{
    while (pos < end) {
        uint8_t first = buf[pos];
        if (first == 0) {
            pos++;
            continue;
        }
        unsigned int id = first >> 4;
        size_t value_len = (size_t)(first & 0x0F) + 1;
        if (id == 15)
            break;
        if (id == 0 || value_len > end - pos - 1)
            return MW_RTP_ERR_BAD_EXT_ELEMENT;
        note_element(h, id, pos + 1, value_len);
        pos += 1 + value_len;
    }
    return MW_RTP_OK;
}

/* Two-byte form, data in buf[pos, end). */
static int parse_two_byte(const uint8_t *buf, size_t pos, size_t end, struct mw_rtp_header *h)
{
    while (pos < end) {
        unsigned int id = buf[pos];
        if (id == 0) {
            pos++;
            continue;
        }
        if (end - pos < 2)
            return MW_RTP_ERR_BAD_EXT_ELEMENT;
        size_t value_len = buf[pos + 1];
        if (value_len > end - pos - 2)
            return MW_RTP_ERR_BAD_EXT_ELEMENT;
        note_element(h, id, pos + 2, value_len);
        pos += 2 + value_len;
    }
    return MW_RTP_OK;
}

/* The extension block at buf[pos, len): fills h->ext_* and sets *end to the block's end. */
static int parse_extension(const uint8_t *buf, size_t len, size_t pos, struct mw_rtp_header *h,
                           size_t *end)
{
    if (len - pos < 4)
        return MW_RTP_ERR_EXT_PAST_END;
    uint16_t profile = read16(buf + pos);
    size_t data_len = (size_t)read16(buf + pos + 2) * 4;
    size_t data = pos + 4;
    if (data_len > len - data)
        return MW_RTP_ERR_EXT_PAST_END;
    h->ext_profile = profile;
    h->ext_offset = (uint32_t)data;
    h->ext_length = (uint32_t)data_len;
    *end = data + data_len;
    if (profile == MW_RTP_ONE_BYTE_PROFILE) {
        h->ext_form = MW_RTP_EXT_ONE_BYTE;
        return parse_one_byte(buf, data, *end, h);
    }
    if ((profile & 0xFFF0) == MW_RTP_TWO_BYTE_PROFILE) {
        h->ext_form = MW_RTP_EXT_TWO_BYTE;
        return parse_two_byte(buf, data, *end, h);
    }
    h->ext_form = MW_RTP_EXT_OPAQUE;
    return MW_RTP_OK;
}

int mw_rtp_parse(const uint8_t *buf, size_t len, struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (buf == NULL || len > MW_RTP_MAX_PACKET_BYTES)
        return MW_RTP_ERR_BAD_ARGUMENT;
    if (len < MW_RTP_FIXED_HEADER_BYTES)
        return MW_RTP_ERR_TOO_SHORT;
    uint8_t b0 = buf[0];
    uint8_t b1 = buf[1];
    h->version = b0 >> 6;
    if (h->version != 2)
        return MW_RTP_ERR_BAD_VERSION;
    h->padding = (b0 >> 5) & 1;
    h->extension = (b0 >> 4) & 1;
    h->csrc_count = b0 & 0x0F;
    h->marker = b1 >> 7;
    h->payload_type = b1 & 0x7F;
    h->sequence_number = read16(buf + 2);
    h->timestamp = read32(buf + 4);
    h->ssrc = read32(buf + 8);

    size_t pos = MW_RTP_FIXED_HEADER_BYTES + (size_t)h->csrc_count * 4;
    if (pos > len)
        return MW_RTP_ERR_CSRC_PAST_END;

    h->ext_profile = 0;
    h->ext_form = MW_RTP_EXT_NONE;
    h->ext_stored = 0;
    h->ext_offset = 0;
    h->ext_length = 0;
    h->ext_count = 0;
    if (h->extension) {
        int rc = parse_extension(buf, len, pos, h, &pos);
        if (rc != MW_RTP_OK)
            return rc;
    }

    size_t rest = len - pos;
    size_t pad = 0;
    if (h->padding) {
        if (rest == 0)
            return MW_RTP_ERR_PADDING_PAST_PAYLOAD;
        pad = buf[len - 1];
        if (pad == 0)
            return MW_RTP_ERR_PADDING_ZERO;
        if (pad > rest)
            return MW_RTP_ERR_PADDING_PAST_PAYLOAD;
    }
    h->payload_offset = (uint32_t)pos;
    h->payload_length = (uint32_t)(rest - pad);
    h->padding_length = (uint32_t)pad;
    return MW_RTP_OK;
}

int mw_rtp_ext_find(const struct mw_rtp_header *h, unsigned int id)
{
    if (h == NULL)
        return -1;
    for (unsigned int i = 0; i < h->ext_stored && i < MW_RTP_MAX_EXT_ELEMENTS; i++) {
        if (h->ext[i].id == id)
            return (int)i;
    }
    return -1;
}

/* ---- fixed-header rewrite ------------------------------------------------------------------ */

static int fixed_fields_valid(uint32_t fields, uint32_t seq, uint32_t payload_type, uint32_t marker)
{
    if (fields & ~(uint32_t)MW_RTP_SET_ALL)
        return 0;
    if ((fields & MW_RTP_SET_SEQ) && seq > 0xFFFF)
        return 0;
    if ((fields & MW_RTP_SET_PAYLOAD_TYPE) && payload_type > 0x7F)
        return 0;
    if ((fields & MW_RTP_SET_MARKER) && marker > 1)
        return 0;
    return 1;
}

/* Write the fields (already validated) into a parsed packet and its header struct. */
static void apply_fixed(uint8_t *buf, struct mw_rtp_header *h, uint32_t fields, uint32_t ssrc,
                        uint32_t seq, uint32_t timestamp, uint32_t payload_type, uint32_t marker)
{
    if (fields & MW_RTP_SET_SSRC) {
        write32(buf + 8, ssrc);
        h->ssrc = ssrc;
    }
    if (fields & MW_RTP_SET_SEQ) {
        write16(buf + 2, seq);
        h->sequence_number = (uint16_t)seq;
    }
    if (fields & MW_RTP_SET_TIMESTAMP) {
        write32(buf + 4, timestamp);
        h->timestamp = timestamp;
    }
    if (fields & MW_RTP_SET_PAYLOAD_TYPE) {
        buf[1] = (uint8_t)((buf[1] & 0x80) | payload_type);
        h->payload_type = (uint8_t)payload_type;
    }
    if (fields & MW_RTP_SET_MARKER) {
        buf[1] = (uint8_t)((buf[1] & 0x7F) | (marker << 7));
        h->marker = (uint8_t)marker;
    }
}

int mw_rtp_rewrite(uint8_t *buf, size_t len, uint32_t fields, uint32_t ssrc, uint32_t seq,
                   uint32_t timestamp, uint32_t payload_type, uint32_t marker,
                   struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (!fixed_fields_valid(fields, seq, payload_type, marker))
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, h);
    if (rc != MW_RTP_OK)
        return rc;
    apply_fixed(buf, h, fields, ssrc, seq, timestamp, payload_type, marker);
    return (int)len;
}

/* ---- header extensions ------------------------------------------------------------------- */

/* An element of the block being rebuilt; `value` points into the packet or the caller's bytes. */
struct element_ref {
    const uint8_t *value;
    size_t length;
    unsigned int id;
};

static int fits_one_byte(unsigned int id, size_t length)
{
    return id >= 1 && id <= MW_RTP_ONE_BYTE_MAX_ID && length >= 1
           && length <= MW_RTP_ONE_BYTE_MAX_VALUE;
}

/* Write the canonical block for `refs` into `block`; returns its size (0 when there is none). */
static size_t build_block(uint8_t *block, const struct element_ref *refs, size_t n,
                          const struct mw_rtp_header *h)
{
    if (n == 0)
        return 0;
    int one_byte = h->ext_form != MW_RTP_EXT_TWO_BYTE;
    for (size_t i = 0; i < n && one_byte; i++)
        one_byte = fits_one_byte(refs[i].id, refs[i].length);
    size_t pos = 4;
    for (size_t i = 0; i < n; i++) {
        if (one_byte) {
            block[pos++] = (uint8_t)((refs[i].id << 4) | (refs[i].length - 1));
        } else {
            block[pos++] = (uint8_t)refs[i].id;
            block[pos++] = (uint8_t)refs[i].length;
        }
        if (refs[i].length != 0)
            memcpy(block + pos, refs[i].value, refs[i].length);
        pos += refs[i].length;
    }
    while (pos % 4 != 0)
        block[pos++] = 0;
    uint32_t profile = one_byte ? MW_RTP_ONE_BYTE_PROFILE
                       : h->ext_form == MW_RTP_EXT_TWO_BYTE ? h->ext_profile
                                                             : MW_RTP_TWO_BYTE_PROFILE;
    write16(block, profile);
    write16(block + 2, (uint32_t)((pos - 4) / 4));
    return pos;
}

/* Replace the packet's extension block (parsed in *h) by the canonical block for `refs`. */
static int replace_block(uint8_t *buf, size_t len, size_t cap, const struct mw_rtp_header *h,
                         const struct element_ref *refs, size_t n, struct mw_rtp_header *out)
{
    uint8_t block[EXT_BLOCK_MAX_BYTES];
    size_t new_size = build_block(block, refs, n, h);
    size_t start = MW_RTP_FIXED_HEADER_BYTES + (size_t)h->csrc_count * 4;
    size_t old_size = h->extension ? 4 + (size_t)h->ext_length : 0;
    size_t rest = len - start - old_size;
    if (start + new_size + rest > cap)
        return MW_RTP_ERR_NO_ROOM;
    memmove(buf + start + new_size, buf + start + old_size, rest);
    memcpy(buf + start, block, new_size);
    if (new_size != 0)
        buf[0] |= 0x10;
    else
        buf[0] &= (uint8_t)~0x10;
    size_t new_len = start + new_size + rest;
    struct mw_rtp_header local;
    int rc = mw_rtp_parse(buf, new_len, out != NULL ? out : &local);
    return rc == MW_RTP_OK ? (int)new_len : rc;
}

/* The stored elements as refs (the caller has checked they are all of them). */
static size_t collect_refs(const uint8_t *buf, const struct mw_rtp_header *h,
                           struct element_ref *refs)
{
    size_t n = h->ext_stored;
    for (size_t i = 0; i < n; i++) {
        refs[i].value = buf + h->ext[i].offset;
        refs[i].length = h->ext[i].length;
        refs[i].id = h->ext[i].id;
    }
    return n;
}

static int ext_args_valid(const uint8_t *buf, size_t len, size_t cap, unsigned int id,
                          const uint8_t *value, size_t value_len)
{
    return buf != NULL && cap >= len && id >= 1 && id <= MW_RTP_TWO_BYTE_MAX_ID
           && value_len <= MW_RTP_TWO_BYTE_MAX_VALUE && (value != NULL || value_len == 0);
}

int mw_rtp_ext_set(uint8_t *buf, size_t len, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (!ext_args_valid(buf, len, len, id, value, value_len))
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, h);
    if (rc != MW_RTP_OK)
        return rc;
    if (h->ext_form == MW_RTP_EXT_OPAQUE)
        return MW_RTP_ERR_EXT_OPAQUE;
    int i = mw_rtp_ext_find(h, id);
    if (i < 0)
        return h->ext_count > h->ext_stored ? MW_RTP_ERR_EXT_TOO_MANY : MW_RTP_ERR_EXT_NOT_FOUND;
    if (h->ext[i].length != value_len)
        return MW_RTP_ERR_EXT_LENGTH_MISMATCH;
    if (value_len != 0)
        memmove(buf + h->ext[i].offset, value, value_len);
    return (int)len;
}

/* put (replace_existing != 0) and add share this. */
static int ext_store(uint8_t *buf, size_t len, size_t cap, unsigned int id, const uint8_t *value,
                     size_t value_len, int replace_existing, struct mw_rtp_header *out)
{
    struct mw_rtp_header h;
    if (!ext_args_valid(buf, len, cap, id, value, value_len))
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, &h);
    if (rc != MW_RTP_OK)
        return rc;
    if (h.ext_form == MW_RTP_EXT_OPAQUE)
        return MW_RTP_ERR_EXT_OPAQUE;
    int found = mw_rtp_ext_find(&h, id);
    if (found >= 0 && !replace_existing)
        return MW_RTP_ERR_EXT_EXISTS;
    if (found >= 0 && h.ext[found].length == value_len) {
        if (value_len != 0)
            memmove(buf + h.ext[found].offset, value, value_len);
        if (out != NULL)
            *out = h;
        return (int)len;
    }
    if (h.ext_count > h.ext_stored)
        return MW_RTP_ERR_EXT_TOO_MANY;
    struct element_ref refs[MW_RTP_MAX_EXT_ELEMENTS + 1];
    size_t n = collect_refs(buf, &h, refs);
    size_t slot = found >= 0 ? (size_t)found : n++;
    refs[slot].value = value;
    refs[slot].length = value_len;
    refs[slot].id = id;
    return replace_block(buf, len, cap, &h, refs, n, out);
}

int mw_rtp_ext_put(uint8_t *buf, size_t len, size_t cap, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out)
{
    return ext_store(buf, len, cap, id, value, value_len, 1, out);
}

int mw_rtp_ext_add(uint8_t *buf, size_t len, size_t cap, unsigned int id, const uint8_t *value,
                   size_t value_len, struct mw_rtp_header *out)
{
    return ext_store(buf, len, cap, id, value, value_len, 0, out);
}

int mw_rtp_ext_remap(uint8_t *buf, size_t len, size_t cap, const uint8_t *table,
                     struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (buf == NULL || table == NULL || cap < len)
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, h);
    if (rc != MW_RTP_OK)
        return rc;
    if (h->ext_form == MW_RTP_EXT_NONE)
        return (int)len;
    if (h->ext_form == MW_RTP_EXT_OPAQUE)
        return MW_RTP_ERR_EXT_OPAQUE;
    if (h->ext_count > h->ext_stored)
        return MW_RTP_ERR_EXT_TOO_MANY;

    /* In place when no element goes away and every new id is valid in the current form. */
    int in_place = 1;
    for (size_t i = 0; i < h->ext_stored && in_place; i++) {
        unsigned int id = table[h->ext[i].id];
        in_place = id != 0 && (h->ext_form == MW_RTP_EXT_TWO_BYTE || id <= MW_RTP_ONE_BYTE_MAX_ID);
    }
    if (in_place) {
        for (size_t i = 0; i < h->ext_stored; i++) {
            struct mw_rtp_ext_element *e = &h->ext[i];
            uint8_t id = table[e->id];
            if (h->ext_form == MW_RTP_EXT_TWO_BYTE)
                buf[e->offset - 2] = id;
            else
                buf[e->offset - 1] = (uint8_t)((id << 4) | (e->length - 1));
            e->id = id;
        }
        return (int)len;
    }

    struct element_ref refs[MW_RTP_MAX_EXT_ELEMENTS];
    size_t n = 0;
    for (size_t i = 0; i < h->ext_stored; i++) {
        unsigned int id = table[h->ext[i].id];
        if (id == 0)
            continue;
        refs[n].value = buf + h->ext[i].offset;
        refs[n].length = h->ext[i].length;
        refs[n].id = id;
        n++;
    }
    struct mw_rtp_header parsed = *h;
    return replace_block(buf, len, cap, &parsed, refs, n, out);
}

/* ---- RTX (RFC 4588) ---------------------------------------------------------------------- */

int mw_rtp_rtx_encapsulate(uint8_t *buf, size_t len, size_t cap, uint32_t rtx_ssrc,
                           uint32_t rtx_payload_type, uint32_t rtx_seq, struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (buf == NULL || cap < len || rtx_payload_type > 0x7F || rtx_seq > 0xFFFF)
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, h);
    if (rc != MW_RTP_OK)
        return rc;
    if (cap - len < 2)
        return MW_RTP_ERR_NO_ROOM;
    uint8_t *payload = buf + h->payload_offset;
    memmove(payload + 2, payload, len - h->payload_offset);
    write16(payload, h->sequence_number);
    h->payload_length += 2;
    apply_fixed(buf, h, MW_RTP_SET_SSRC | MW_RTP_SET_PAYLOAD_TYPE | MW_RTP_SET_SEQ, rtx_ssrc,
                rtx_seq, 0, rtx_payload_type, 0);
    return (int)(len + 2);
}

int mw_rtp_rtx_decapsulate(uint8_t *buf, size_t len, uint32_t ssrc, uint32_t payload_type,
                           struct mw_rtp_header *out)
{
    struct mw_rtp_header local;
    struct mw_rtp_header *h = out != NULL ? out : &local;
    if (buf == NULL || payload_type > 0x7F)
        return MW_RTP_ERR_BAD_ARGUMENT;
    int rc = mw_rtp_parse(buf, len, h);
    if (rc != MW_RTP_OK)
        return rc;
    if (h->payload_length < 2)
        return MW_RTP_ERR_RTX_TOO_SHORT;
    uint8_t *payload = buf + h->payload_offset;
    uint32_t original_seq = read16(payload);
    memmove(payload, payload + 2, len - h->payload_offset - 2);
    h->payload_length -= 2;
    apply_fixed(buf, h, MW_RTP_SET_SSRC | MW_RTP_SET_PAYLOAD_TYPE | MW_RTP_SET_SEQ, ssrc,
                original_seq, 0, payload_type, 0);
    return (int)(len - 2);
}

/* ---- batches ----------------------------------------------------------------------------- */

static int in_bounds(size_t base_len, uint32_t offset, uint32_t length)
{
    return offset <= base_len && length <= base_len - offset;
}

size_t mw_rtp_parse_batch(const uint8_t *base, size_t base_len, const uint32_t *offsets,
                          const uint32_t *lengths, size_t count, uint32_t *ssrc, uint16_t *seq,
                          uint32_t *timestamp, uint8_t *payload_type, uint8_t *marker,
                          uint32_t *payload_offset, uint32_t *payload_length, int32_t *status)
{
    if (base == NULL || offsets == NULL || lengths == NULL || ssrc == NULL || seq == NULL
        || timestamp == NULL || payload_type == NULL || marker == NULL || payload_offset == NULL
        || payload_length == NULL || status == NULL)
        return 0;
    size_t ok = 0;
    struct mw_rtp_header h;
    for (size_t i = 0; i < count; i++) {
        int rc = in_bounds(base_len, offsets[i], lengths[i])
                     ? mw_rtp_parse(base + offsets[i], lengths[i], &h)
                     : MW_RTP_ERR_OUT_OF_BOUNDS;
        status[i] = rc;
        if (rc == MW_RTP_OK) {
            ok++;
            ssrc[i] = h.ssrc;
            seq[i] = h.sequence_number;
            timestamp[i] = h.timestamp;
            payload_type[i] = h.payload_type;
            marker[i] = h.marker;
            payload_offset[i] = h.payload_offset;
            payload_length[i] = h.payload_length;
        } else {
            ssrc[i] = 0;
            seq[i] = 0;
            timestamp[i] = 0;
            payload_type[i] = 0;
            marker[i] = 0;
            payload_offset[i] = 0;
            payload_length[i] = 0;
        }
    }
    return ok;
}

size_t mw_rtp_parse_batch_headers(const uint8_t *base, size_t base_len, const uint32_t *offsets,
                                  const uint32_t *lengths, size_t count,
                                  struct mw_rtp_header *headers, int32_t *status)
{
    if (base == NULL || offsets == NULL || lengths == NULL || headers == NULL || status == NULL)
        return 0;
    size_t ok = 0;
    for (size_t i = 0; i < count; i++) {
        int rc = in_bounds(base_len, offsets[i], lengths[i])
                     ? mw_rtp_parse(base + offsets[i], lengths[i], &headers[i])
                     : MW_RTP_ERR_OUT_OF_BOUNDS;
        status[i] = rc;
        if (rc == MW_RTP_OK)
            ok++;
        else
            memset(&headers[i], 0, sizeof(headers[i]));
    }
    return ok;
}

size_t mw_rtp_rewrite_batch(uint8_t *base, size_t base_len, const uint32_t *offsets,
                            const uint32_t *lengths, size_t count, uint32_t fields,
                            const uint32_t *ssrc, const uint16_t *seq, const uint32_t *timestamp,
                            const uint8_t *payload_type, const uint8_t *marker, int32_t *status)
{
    if (base == NULL || offsets == NULL || lengths == NULL || status == NULL)
        return 0;
    int arrays_ok = !(fields & ~(uint32_t)MW_RTP_SET_ALL)
                    && !((fields & MW_RTP_SET_SSRC) && ssrc == NULL)
                    && !((fields & MW_RTP_SET_SEQ) && seq == NULL)
                    && !((fields & MW_RTP_SET_TIMESTAMP) && timestamp == NULL)
                    && !((fields & MW_RTP_SET_PAYLOAD_TYPE) && payload_type == NULL)
                    && !((fields & MW_RTP_SET_MARKER) && marker == NULL);
    size_t done = 0;
    for (size_t i = 0; i < count; i++) {
        if (!arrays_ok) {
            status[i] = MW_RTP_ERR_BAD_ARGUMENT;
            continue;
        }
        if (!in_bounds(base_len, offsets[i], lengths[i])) {
            status[i] = MW_RTP_ERR_OUT_OF_BOUNDS;
            continue;
        }
        uint32_t new_pt = (fields & MW_RTP_SET_PAYLOAD_TYPE) ? payload_type[i] : 0;
        uint32_t new_marker = (fields & MW_RTP_SET_MARKER) ? marker[i] : 0;
        int rc = mw_rtp_rewrite(base + offsets[i], lengths[i], fields,
                                (fields & MW_RTP_SET_SSRC) ? ssrc[i] : 0,
                                (fields & MW_RTP_SET_SEQ) ? seq[i] : 0,
                                (fields & MW_RTP_SET_TIMESTAMP) ? timestamp[i] : 0,
                                new_pt, new_marker, NULL);
        status[i] = rc < 0 ? rc : MW_RTP_OK;
        if (rc >= 0)
            done++;
    }
    return done;
}
