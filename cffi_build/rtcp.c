/* mediaworker hot path: RTCP compound walk and parsers (RFC 3550, 4585, 5104, 3611, REMB,
 * transport-cc). Builders are in rtcp_build.c.
 *
 * Every parser takes untrusted bytes: it checks lengths before each read, never reads outside
 * [pkt, pkt + len), and reports malformed input by an enum mw_rtcp_error. Nothing here
 * allocates. */
#include "rtcp.h"
#include "rtcp_wire.h"

#include <string.h>

/* ---- common header ---------------------------------------------------------------------- */

struct header {
    size_t total;    /* bytes of the sub-packet, header and padding included */
    size_t body_len; /* bytes after the 4-byte header, padding excluded */
    uint32_t packet_type;
    uint32_t count;
    uint32_t padding;
};

/* Read the common header of the sub-packet at buf (avail bytes left in the buffer). */
static int read_header(const uint8_t *buf, size_t avail, struct header *h)
{
    if (avail < HEADER_BYTES)
        return MW_RTCP_ERR_HEADER_TRUNCATED;
    if ((buf[0] >> 6) != 2)
        return MW_RTCP_ERR_VERSION;
    size_t total = HEADER_BYTES * ((size_t)rd16(buf + 2) + 1);
    if (total > avail)
        return MW_RTCP_ERR_LENGTH;
    uint32_t padding = 0;
    if (buf[0] & 0x20) {
        if (total == HEADER_BYTES)
            return MW_RTCP_ERR_PADDING;
        padding = buf[total - 1];
        if (padding == 0 || padding > total - HEADER_BYTES)
            return MW_RTCP_ERR_PADDING;
    }
    h->total = total;
    h->body_len = total - HEADER_BYTES - padding;
    h->packet_type = buf[1];
    h->count = buf[0] & 0x1f;
    h->padding = padding;
    return MW_RTCP_OK;
}

/* Read the header of one sub-packet given to a parser and check its type (and FMT if >= 0). */
static int open_packet(const uint8_t *pkt, size_t len, uint32_t packet_type, int fmt,
                       struct header *h)
{
    if (pkt == NULL)
        return MW_RTCP_ERR_HEADER_TRUNCATED;
    int err = read_header(pkt, len, h);
    if (err != MW_RTCP_OK)
        return err;
    if (h->packet_type != packet_type || (fmt >= 0 && h->count != (uint32_t)fmt))
        return MW_RTCP_ERR_WRONG_TYPE;
    return MW_RTCP_OK;
}

int mw_rtcp_walk(const uint8_t *buf, size_t len, struct mw_rtcp_item *items, uint32_t max_items,
                 struct mw_rtcp_walk_result *out)
{
    uint32_t count = 0;
    size_t pos = 0;
    int err = MW_RTCP_OK;

    if (buf == NULL || len == 0) {
        err = MW_RTCP_ERR_EMPTY;
    } else if (len > UINT32_MAX) {
        err = MW_RTCP_ERR_INVALID_ARGUMENT; /* offsets are 32-bit */
    } else {
        while (pos < len) {
            struct header h;
            err = read_header(buf + pos, len - pos, &h);
            if (err != MW_RTCP_OK)
                break;
            if (items != NULL && count < max_items) {
                struct mw_rtcp_item *item = &items[count];
                item->offset = (uint32_t)pos;
                item->length = (uint32_t)h.total;
                item->packet_type = h.packet_type;
                item->count = h.count;
                item->padding = h.padding;
            }
            count++;
            pos += h.total;
        }
    }
    if (out != NULL) {
        out->count = count;
        out->error = (uint32_t)err;
        out->error_offset = (uint32_t)pos;
    }
    return err;
}

/* ---- SR / RR ---------------------------------------------------------------------------- */

static void read_report_blocks(const uint8_t *p, uint32_t n, struct mw_rtcp_report_block *blocks,
                               uint32_t max_blocks)
{
    if (blocks == NULL)
        return;
    for (uint32_t i = 0; i < n && i < max_blocks; i++, p += REPORT_BLOCK_BYTES) {
        struct mw_rtcp_report_block *b = &blocks[i];
        b->ssrc = rd32(p);
        b->fraction_lost = p[4];
        b->packets_lost = sign24(rd24(p + 5));
        b->highest_seq = rd32(p + 8);
        b->jitter = rd32(p + 12);
        b->lsr = rd32(p + 16);
        b->dlsr = rd32(p + 20);
    }
}

int mw_rtcp_parse_sr(const uint8_t *pkt, size_t len, struct mw_rtcp_sender_report *out,
                     struct mw_rtcp_report_block *blocks, uint32_t max_blocks)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_SR, -1, &h);
    if (err != MW_RTCP_OK)
        return err;
    /* Profile-specific extensions may follow the report blocks (RFC 3550 6.4.1). */
    if (h.body_len < SENDER_INFO_BYTES + REPORT_BLOCK_BYTES * h.count)
        return MW_RTCP_ERR_TRUNCATED;
    const uint8_t *body = pkt + HEADER_BYTES;
    out->ssrc = rd32(body);
    out->ntp_timestamp = rd64(body + 4);
    out->rtp_timestamp = rd32(body + 12);
    out->packet_count = rd32(body + 16);
    out->octet_count = rd32(body + 20);
    out->report_count = h.count;
    out->reserved = 0;
    read_report_blocks(body + SENDER_INFO_BYTES, h.count, blocks, max_blocks);
    return MW_RTCP_OK;
}

int mw_rtcp_parse_rr(const uint8_t *pkt, size_t len, struct mw_rtcp_receiver_report *out,
                     struct mw_rtcp_report_block *blocks, uint32_t max_blocks)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_RR, -1, &h);
    if (err != MW_RTCP_OK)
        return err;
    if (h.body_len < 4 + REPORT_BLOCK_BYTES * h.count)
        return MW_RTCP_ERR_TRUNCATED;
    const uint8_t *body = pkt + HEADER_BYTES;
    out->ssrc = rd32(body);
    out->report_count = h.count;
    read_report_blocks(body + 4, h.count, blocks, max_blocks);
    return MW_RTCP_OK;
}

/* ---- SDES / BYE ------------------------------------------------------------------------- */


int mw_rtcp_parse_sdes(const uint8_t *pkt, size_t len, struct mw_rtcp_sdes_chunk *chunks,
                       uint32_t max_chunks, uint32_t *chunk_count)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_SDES, -1, &h);
    if (err != MW_RTCP_OK)
        return err;
    const uint8_t *body = pkt + HEADER_BYTES;
    size_t end = h.body_len;
    size_t pos = 0;
    for (uint32_t i = 0; i < h.count; i++) {
        if (pos + 4 > end)
            return MW_RTCP_ERR_TRUNCATED;
        struct mw_rtcp_sdes_chunk chunk = { rd32(body + pos), 0, 0, 0 };
        pos += 4;
        for (;;) {
            if (pos >= end)
                return MW_RTCP_ERR_SDES_UNTERMINATED;
            uint32_t type = body[pos];
            if (type == SDES_END) {
                /* The null item, then null octets up to the next 32-bit boundary. */
                pos = (pos + 1 + 3) & ~(size_t)3;
                if (pos > end)
                    return MW_RTCP_ERR_SDES_UNTERMINATED;
                break;
            }
            if (pos + 2 > end)
                return MW_RTCP_ERR_TRUNCATED;
            size_t item_len = body[pos + 1];
            if (pos + 2 + item_len > end)
                return MW_RTCP_ERR_TRUNCATED;
            if (type == SDES_CNAME && !chunk.has_cname) {
                chunk.has_cname = 1;
                chunk.cname_offset = (uint32_t)(HEADER_BYTES + pos + 2);
                chunk.cname_length = (uint32_t)item_len;
            }
            pos += 2 + item_len;
        }
        if (chunks != NULL && i < max_chunks)
            chunks[i] = chunk;
    }
    if (chunk_count != NULL)
        *chunk_count = h.count;
    return MW_RTCP_OK;
}

int mw_rtcp_parse_bye(const uint8_t *pkt, size_t len, struct mw_rtcp_bye *out, uint32_t *ssrcs,
                      uint32_t max_ssrcs)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_BYE, -1, &h);
    if (err != MW_RTCP_OK)
        return err;
    const uint8_t *body = pkt + HEADER_BYTES;
    size_t pos = 4 * (size_t)h.count;
    if (pos > h.body_len)
        return MW_RTCP_ERR_TRUNCATED;
    out->source_count = h.count;
    out->has_reason = 0;
    out->reason_offset = 0;
    out->reason_length = 0;
    if (pos < h.body_len) {
        size_t reason_len = body[pos];
        if (pos + 1 + reason_len > h.body_len)
            return MW_RTCP_ERR_TRUNCATED;
        out->has_reason = 1;
        out->reason_offset = (uint32_t)(HEADER_BYTES + pos + 1);
        out->reason_length = (uint32_t)reason_len;
    }
    for (uint32_t i = 0; ssrcs != NULL && i < h.count && i < max_ssrcs; i++)
        ssrcs[i] = rd32(body + 4 * (size_t)i);
    return MW_RTCP_OK;
}

/* ---- feedback: NACK, PLI, FIR, REMB ----------------------------------------------------- */

/* Open an RTPFB/PSFB message and read its two SSRCs. */
static int open_feedback(const uint8_t *pkt, size_t len, uint32_t packet_type, int fmt,
                         struct header *h, struct mw_rtcp_feedback *out)
{
    int err = open_packet(pkt, len, packet_type, fmt, h);
    if (err != MW_RTCP_OK)
        return err;
    if (h->body_len < FEEDBACK_BYTES)
        return MW_RTCP_ERR_TRUNCATED;
    out->sender_ssrc = rd32(pkt + HEADER_BYTES);
    out->media_ssrc = rd32(pkt + HEADER_BYTES + 4);
    out->item_count = 0;
    return MW_RTCP_OK;
}

/* Count the fixed-size FCI entries after the feedback header. */
static int count_entries(const struct header *h, size_t entry_bytes, uint32_t *n)
{
    size_t fci = h->body_len - FEEDBACK_BYTES;
    if (fci % entry_bytes != 0)
        return MW_RTCP_ERR_ITEM_LENGTH;
    if (fci == 0)
        return MW_RTCP_ERR_NO_ITEMS;
    *n = (uint32_t)(fci / entry_bytes);
    return MW_RTCP_OK;
}

int mw_rtcp_parse_nack(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out,
                       struct mw_rtcp_nack_item *items, uint32_t max_items)
{
    struct header h;
    int err = open_feedback(pkt, len, MW_RTCP_PT_RTPFB, MW_RTCP_RTPFB_NACK, &h, out);
    if (err == MW_RTCP_OK)
        err = count_entries(&h, 4, &out->item_count);
    if (err != MW_RTCP_OK)
        return err;
    const uint8_t *fci = pkt + HEADER_BYTES + FEEDBACK_BYTES;
    for (uint32_t i = 0; items != NULL && i < out->item_count && i < max_items; i++) {
        items[i].pid = (uint16_t)rd16(fci + 4 * (size_t)i);
        items[i].blp = (uint16_t)rd16(fci + 4 * (size_t)i + 2);
    }
    return MW_RTCP_OK;
}

uint32_t mw_rtcp_nack_expand(const struct mw_rtcp_nack_item *items, uint32_t n, uint16_t *out,
                             uint32_t max_out)
{
    uint32_t total = 0;
    for (uint32_t i = 0; items != NULL && i < n; i++) {
        uint32_t pid = items[i].pid;
        if (out != NULL && total < max_out)
            out[total] = (uint16_t)pid;
        total++;
        for (uint32_t bit = 0; bit < 16; bit++) {
            if (!((items[i].blp >> bit) & 1u))
                continue;
            if (out != NULL && total < max_out)
                out[total] = (uint16_t)(pid + bit + 1);
            total++;
        }
    }
    return total;
}

int mw_rtcp_parse_pli(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out)
{
    struct header h;
    return open_feedback(pkt, len, MW_RTCP_PT_PSFB, MW_RTCP_PSFB_PLI, &h, out);
}

int mw_rtcp_parse_fir(const uint8_t *pkt, size_t len, struct mw_rtcp_feedback *out,
                      struct mw_rtcp_fir_entry *entries, uint32_t max_entries)
{
    struct header h;
    int err = open_feedback(pkt, len, MW_RTCP_PT_PSFB, MW_RTCP_PSFB_FIR, &h, out);
    if (err == MW_RTCP_OK)
        err = count_entries(&h, 8, &out->item_count);
    if (err != MW_RTCP_OK)
        return err;
    const uint8_t *fci = pkt + HEADER_BYTES + FEEDBACK_BYTES;
    for (uint32_t i = 0; entries != NULL && i < out->item_count && i < max_entries; i++) {
        entries[i].ssrc = rd32(fci + 8 * (size_t)i);
        entries[i].seq = fci[8 * (size_t)i + 4];
    }
    return MW_RTCP_OK;
}

int mw_rtcp_parse_remb(const uint8_t *pkt, size_t len, struct mw_rtcp_remb *out, uint32_t *ssrcs,
                       uint32_t max_ssrcs)
{
    struct header h;
    struct mw_rtcp_feedback fb;
    int err = open_feedback(pkt, len, MW_RTCP_PT_PSFB, MW_RTCP_PSFB_AFB, &h, &fb);
    if (err != MW_RTCP_OK)
        return err;
    const uint8_t *fci = pkt + HEADER_BYTES + FEEDBACK_BYTES;
    if (h.body_len < FEEDBACK_BYTES + 4 || memcmp(fci, "REMB", 4) != 0)
        return MW_RTCP_ERR_NOT_REMB;
    if (h.body_len < FEEDBACK_BYTES + 8)
        return MW_RTCP_ERR_TRUNCATED;
    uint32_t n = fci[4];
    if (h.body_len < FEEDBACK_BYTES + 8 + 4 * (size_t)n)
        return MW_RTCP_ERR_TRUNCATED;
    uint32_t exponent = fci[5] >> 2;
    uint64_t mantissa = ((uint64_t)(fci[5] & 0x03) << 16) | rd16(fci + 6);
    out->sender_ssrc = fb.sender_ssrc;
    out->media_ssrc = fb.media_ssrc;
    out->exponent = exponent;
    out->mantissa = (uint32_t)mantissa;
    out->ssrc_count = n;
    out->reserved = 0;
    if (exponent > 0 && (mantissa >> (64 - exponent)) != 0)
        out->bitrate = UINT64_MAX;
    else
        out->bitrate = mantissa << exponent;
    for (uint32_t i = 0; ssrcs != NULL && i < n && i < max_ssrcs; i++)
        ssrcs[i] = rd32(fci + 8 + 4 * (size_t)i);
    return MW_RTCP_OK;
}

/* ---- transport-cc ----------------------------------------------------------------------- */

/* Decode the status symbols of one packet chunk, at most `remaining` of them, into syms.
 * Returns how many packets the chunk describes (a run may describe up to 8191). For a run,
 * only syms[0] is written. */
static uint32_t tcc_chunk(uint32_t chunk, uint32_t remaining, uint8_t syms[14], int *is_run)
{
    if (!(chunk & 0x8000)) {
        uint32_t run = chunk & 0x1fff;
        syms[0] = (uint8_t)((chunk >> 13) & 3);
        *is_run = 1;
        return run < remaining ? run : remaining;
    }
    *is_run = 0;
    if (!(chunk & 0x4000)) {
        uint32_t n = remaining < 14 ? remaining : 14;
        for (uint32_t i = 0; i < n; i++)
            syms[i] = (uint8_t)((chunk >> (13 - i)) & 1);
        return n;
    }
    uint32_t n = remaining < 7 ? remaining : 7;
    for (uint32_t i = 0; i < n; i++)
        syms[i] = (uint8_t)((chunk >> (12 - 2 * i)) & 3);
    return n;
}

int mw_rtcp_parse_tcc(const uint8_t *pkt, size_t len, struct mw_rtcp_tcc *out, uint8_t *statuses,
                      int32_t *deltas, uint32_t max_packets)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_RTPFB, MW_RTCP_RTPFB_TCC, &h);
    if (err != MW_RTCP_OK)
        return err;
    if (h.body_len < TCC_FIXED_BYTES)
        return MW_RTCP_ERR_TRUNCATED;
    const uint8_t *body = pkt + HEADER_BYTES;
    size_t end = h.body_len;
    uint32_t count = rd16(body + 10);

    /* Pass 1: find where the chunks end, and how many delta bytes follow them. */
    size_t pos = TCC_FIXED_BYTES;
    size_t delta_bytes = 0;
    uint32_t covered = 0, received = 0, chunks = 0;
    uint8_t syms[14];
    while (covered < count) {
        if (pos + 2 > end)
            return MW_RTCP_ERR_TRUNCATED;
        int is_run;
        uint32_t n = tcc_chunk(rd16(body + pos), count - covered, syms, &is_run);
        pos += 2;
        chunks++;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t s = is_run ? syms[0] : syms[i];
            if (s == 3)
                return MW_RTCP_ERR_TCC_RESERVED;
            if (s != MW_RTCP_TCC_NOT_RECEIVED) {
                received++;
                delta_bytes += s;
            }
        }
        covered += n;
    }
    if (pos + delta_bytes > end)
        return MW_RTCP_ERR_TRUNCATED;

    out->sender_ssrc = rd32(body);
    out->media_ssrc = rd32(body + 4);
    out->base_seq = rd16(body + 8);
    out->status_count = count;
    out->reference_time = sign24(rd24(body + 12));
    out->fb_count = body[15];
    out->received_count = received;
    out->chunk_count = chunks;

    /* Pass 2: the statuses again, now reading each received packet's delta. */
    size_t cpos = TCC_FIXED_BYTES, dpos = pos;
    uint32_t index = 0;
    while (index < count && index < max_packets) {
        int is_run;
        uint32_t n = tcc_chunk(rd16(body + cpos), count - index, syms, &is_run);
        cpos += 2;
        for (uint32_t i = 0; i < n && index < max_packets; i++, index++) {
            uint8_t s = is_run ? syms[0] : syms[i];
            int32_t delta = 0;
            if (s == MW_RTCP_TCC_SMALL_DELTA) {
                delta = body[dpos];
                dpos += 1;
            } else if (s == MW_RTCP_TCC_LARGE_DELTA) {
                uint32_t raw = rd16(body + dpos);
                delta = (raw & 0x8000u) ? (int32_t)raw - 0x10000 : (int32_t)raw;
                dpos += 2;
            }
            if (statuses != NULL)
                statuses[index] = s;
            if (deltas != NULL)
                deltas[index] = delta;
        }
    }
    return MW_RTCP_OK;
}

/* ---- XR --------------------------------------------------------------------------------- */


int mw_rtcp_parse_xr(const uint8_t *pkt, size_t len, struct mw_rtcp_xr *out,
                     struct mw_rtcp_dlrr *dlrr, uint32_t max_dlrr)
{
    struct header h;
    int err = open_packet(pkt, len, MW_RTCP_PT_XR, -1, &h);
    if (err != MW_RTCP_OK)
        return err;
    if (h.body_len < 4)
        return MW_RTCP_ERR_TRUNCATED;
    const uint8_t *body = pkt + HEADER_BYTES;
    out->sender_ssrc = rd32(body);
    out->rrt_ntp = 0;
    out->has_rrt = 0;
    out->block_count = 0;
    out->dlrr_count = 0;
    size_t pos = 4;
    while (pos < h.body_len) {
        if (pos + 4 > h.body_len)
            return MW_RTCP_ERR_TRUNCATED;
        uint32_t block_type = body[pos];
        size_t words = rd16(body + pos + 2);
        if (pos + 4 + 4 * words > h.body_len)
            return MW_RTCP_ERR_TRUNCATED;
        const uint8_t *content = body + pos + 4;
        if (block_type == XR_RRT) {
            if (words != 2)
                return MW_RTCP_ERR_ITEM_LENGTH;
            if (!out->has_rrt) {
                out->has_rrt = 1;
                out->rrt_ntp = rd64(content);
            }
        } else if (block_type == XR_DLRR) {
            if (words % 3 != 0)
                return MW_RTCP_ERR_ITEM_LENGTH;
            for (size_t i = 0; i < words / 3; i++, content += 12) {
                if (dlrr != NULL && out->dlrr_count < max_dlrr) {
                    struct mw_rtcp_dlrr *d = &dlrr[out->dlrr_count];
                    d->ssrc = rd32(content);
                    d->lrr = rd32(content + 4);
                    d->dlrr = rd32(content + 8);
                }
                out->dlrr_count++;
            }
        }
        out->block_count++;
        pos += 4 + 4 * words;
    }
    return MW_RTCP_OK;
}
