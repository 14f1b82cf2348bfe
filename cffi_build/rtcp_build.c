/* mediaworker hot path: RTCP builders (SR, RR, SDES, BYE, NACK, PLI, FIR, REMB, transport-cc,
 * XR). Each checks its arguments and the capacity before writing, returns the bytes written or a
 * negative enum mw_rtcp_error, and never sets the padding bit. Nothing here allocates. */
#include "rtcp.h"
#include "rtcp_wire.h"

#include <string.h>

/* ---- builders --------------------------------------------------------------------------- */

/* Check the room for a sub-packet of `total` bytes and write its header. */
static int begin_packet(uint8_t *out, size_t cap, size_t total, uint32_t count,
                        uint32_t packet_type)
{
    if (total % 4 != 0 || total / 4 - 1 > MAX_LENGTH_WORDS)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    if (out == NULL || total > cap)
        return -MW_RTCP_ERR_NO_SPACE;
    out[0] = (uint8_t)(0x80 | count);
    out[1] = (uint8_t)packet_type;
    wr16(out + 2, (uint32_t)(total / 4 - 1));
    return MW_RTCP_OK;
}

static int check_report_blocks(const struct mw_rtcp_report_block *blocks, uint32_t n)
{
    if (n > MW_RTCP_MAX_COUNT || (n > 0 && blocks == NULL))
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < n; i++) {
        if (blocks[i].fraction_lost > 255 || blocks[i].packets_lost < -0x800000 ||
            blocks[i].packets_lost > 0x7fffff)
            return -MW_RTCP_ERR_INVALID_ARGUMENT;
    }
    return MW_RTCP_OK;
}

static void write_report_blocks(uint8_t *p, const struct mw_rtcp_report_block *blocks, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++, p += REPORT_BLOCK_BYTES) {
        const struct mw_rtcp_report_block *b = &blocks[i];
        wr32(p, b->ssrc);
        p[4] = (uint8_t)b->fraction_lost;
        wr24(p + 5, (uint32_t)b->packets_lost & 0xffffffu);
        wr32(p + 8, b->highest_seq);
        wr32(p + 12, b->jitter);
        wr32(p + 16, b->lsr);
        wr32(p + 20, b->dlsr);
    }
}

int mw_rtcp_build_sr(uint8_t *out, size_t cap, uint32_t ssrc, uint64_t ntp_timestamp,
                     uint32_t rtp_timestamp, uint32_t packet_count, uint32_t octet_count,
                     const struct mw_rtcp_report_block *blocks, uint32_t n)
{
    int err = check_report_blocks(blocks, n);
    size_t total = HEADER_BYTES + SENDER_INFO_BYTES + REPORT_BLOCK_BYTES * n;
    if (err == MW_RTCP_OK)
        err = begin_packet(out, cap, total, n, MW_RTCP_PT_SR);
    if (err != MW_RTCP_OK)
        return err;
    uint8_t *p = out + HEADER_BYTES;
    wr32(p, ssrc);
    wr64(p + 4, ntp_timestamp);
    wr32(p + 12, rtp_timestamp);
    wr32(p + 16, packet_count);
    wr32(p + 20, octet_count);
    write_report_blocks(p + SENDER_INFO_BYTES, blocks, n);
    return (int)total;
}

int mw_rtcp_build_rr(uint8_t *out, size_t cap, uint32_t ssrc,
                     const struct mw_rtcp_report_block *blocks, uint32_t n)
{
    int err = check_report_blocks(blocks, n);
    size_t total = HEADER_BYTES + 4 + REPORT_BLOCK_BYTES * n;
    if (err == MW_RTCP_OK)
        err = begin_packet(out, cap, total, n, MW_RTCP_PT_RR);
    if (err != MW_RTCP_OK)
        return err;
    wr32(out + HEADER_BYTES, ssrc);
    write_report_blocks(out + HEADER_BYTES + 4, blocks, n);
    return (int)total;
}

/* Bytes of one SDES chunk holding only a CNAME: SSRC, item, null item, padding to 32 bits. */
static size_t sdes_chunk_bytes(uint32_t cname_length)
{
    return (4 + 2 + (size_t)cname_length + 1 + 3) & ~(size_t)3;
}

int mw_rtcp_build_sdes(uint8_t *out, size_t cap, const uint32_t *ssrcs, const uint8_t *cnames,
                       const uint32_t *cname_lengths, uint32_t n)
{
    if (n > MW_RTCP_MAX_COUNT || (n > 0 && (ssrcs == NULL || cname_lengths == NULL)))
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t total = HEADER_BYTES, text = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (cname_lengths[i] > MW_RTCP_MAX_TEXT)
            return -MW_RTCP_ERR_INVALID_ARGUMENT;
        total += sdes_chunk_bytes(cname_lengths[i]);
        text += cname_lengths[i];
    }
    if (text > 0 && cnames == NULL)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    int err = begin_packet(out, cap, total, n, MW_RTCP_PT_SDES);
    if (err != MW_RTCP_OK)
        return err;
    uint8_t *p = out + HEADER_BYTES;
    const uint8_t *name = cnames;
    for (uint32_t i = 0; i < n; i++) {
        size_t chunk = sdes_chunk_bytes(cname_lengths[i]);
        memset(p, 0, chunk);
        wr32(p, ssrcs[i]);
        p[4] = SDES_CNAME;
        p[5] = (uint8_t)cname_lengths[i];
        if (cname_lengths[i] > 0) {
            memcpy(p + 6, name, cname_lengths[i]);
            name += cname_lengths[i];
        }
        p += chunk;
    }
    return (int)total;
}

int mw_rtcp_build_bye(uint8_t *out, size_t cap, const uint32_t *ssrcs, uint32_t n,
                      const uint8_t *reason, int32_t reason_length)
{
    if (n > MW_RTCP_MAX_COUNT || (n > 0 && ssrcs == NULL) || reason_length > MW_RTCP_MAX_TEXT ||
        (reason_length > 0 && reason == NULL))
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t reason_bytes = reason_length < 0 ? 0 : ((size_t)reason_length + 1 + 3) & ~(size_t)3;
    size_t total = HEADER_BYTES + 4 * (size_t)n + reason_bytes;
    int err = begin_packet(out, cap, total, n, MW_RTCP_PT_BYE);
    if (err != MW_RTCP_OK)
        return err;
    uint8_t *p = out + HEADER_BYTES;
    for (uint32_t i = 0; i < n; i++, p += 4)
        wr32(p, ssrcs[i]);
    if (reason_length >= 0) {
        memset(p, 0, reason_bytes);
        p[0] = (uint8_t)reason_length;
        if (reason_length > 0)
            memcpy(p + 1, reason, (size_t)reason_length);
    }
    return (int)total;
}

static void write_feedback(uint8_t *out, uint32_t sender_ssrc, uint32_t media_ssrc)
{
    wr32(out + HEADER_BYTES, sender_ssrc);
    wr32(out + HEADER_BYTES + 4, media_ssrc);
}

/* A lost sequence number joins the current item when it lies 1..16 after its PID. */
static int nack_joins(uint32_t pid, uint32_t seq) { return ((seq - pid - 1) & 0xffffu) < 16; }

int mw_rtcp_build_nack(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       const uint16_t *lost, uint32_t n)
{
    if (n == 0 || lost == NULL)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t items = 1;
    for (uint32_t i = 1, pid = lost[0]; i < n; i++) {
        if (!nack_joins(pid, lost[i])) {
            items++;
            pid = lost[i];
        }
    }
    size_t total = HEADER_BYTES + FEEDBACK_BYTES + 4 * items;
    int err = begin_packet(out, cap, total, MW_RTCP_RTPFB_NACK, MW_RTCP_PT_RTPFB);
    if (err != MW_RTCP_OK)
        return err;
    write_feedback(out, sender_ssrc, media_ssrc);
    uint8_t *p = out + HEADER_BYTES + FEEDBACK_BYTES;
    uint32_t pid = lost[0], blp = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (nack_joins(pid, lost[i])) {
            blp |= 1u << ((lost[i] - pid - 1) & 0xffffu);
            continue;
        }
        wr16(p, pid);
        wr16(p + 2, blp);
        p += 4;
        pid = lost[i];
        blp = 0;
    }
    wr16(p, pid);
    wr16(p + 2, blp);
    return (int)total;
}

int mw_rtcp_build_pli(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc)
{
    size_t total = HEADER_BYTES + FEEDBACK_BYTES;
    int err = begin_packet(out, cap, total, MW_RTCP_PSFB_PLI, MW_RTCP_PT_PSFB);
    if (err != MW_RTCP_OK)
        return err;
    write_feedback(out, sender_ssrc, media_ssrc);
    return (int)total;
}

int mw_rtcp_build_fir(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                      const struct mw_rtcp_fir_entry *entries, uint32_t n)
{
    if (n == 0 || entries == NULL || n > MAX_LENGTH_WORDS / 2)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].seq > 255)
            return -MW_RTCP_ERR_INVALID_ARGUMENT;
    }
    size_t total = HEADER_BYTES + FEEDBACK_BYTES + 8 * (size_t)n;
    int err = begin_packet(out, cap, total, MW_RTCP_PSFB_FIR, MW_RTCP_PT_PSFB);
    if (err != MW_RTCP_OK)
        return err;
    write_feedback(out, sender_ssrc, media_ssrc);
    uint8_t *p = out + HEADER_BYTES + FEEDBACK_BYTES;
    for (uint32_t i = 0; i < n; i++, p += 8) {
        wr32(p, entries[i].ssrc);
        p[4] = (uint8_t)entries[i].seq;
        p[5] = p[6] = p[7] = 0;
    }
    return (int)total;
}

int mw_rtcp_build_remb(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                       uint64_t bitrate, const uint32_t *ssrcs, uint32_t n)
{
    if (n > MW_RTCP_MAX_REMB_SSRCS || (n > 0 && ssrcs == NULL))
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t total = HEADER_BYTES + FEEDBACK_BYTES + 8 + 4 * (size_t)n;
    int err = begin_packet(out, cap, total, MW_RTCP_PSFB_AFB, MW_RTCP_PT_PSFB);
    if (err != MW_RTCP_OK)
        return err;
    write_feedback(out, sender_ssrc, media_ssrc);
    uint32_t exponent = 0;
    uint64_t mantissa = bitrate;
    while (mantissa > 0x3ffff) {
        mantissa >>= 1;
        exponent++;
    }
    uint8_t *p = out + HEADER_BYTES + FEEDBACK_BYTES;
    memcpy(p, "REMB", 4);
    p[4] = (uint8_t)n;
    p[5] = (uint8_t)((exponent << 2) | (uint32_t)(mantissa >> 16));
    wr16(p + 6, (uint32_t)mantissa & 0xffffu);
    for (uint32_t i = 0; i < n; i++)
        wr32(p + 8 + 4 * (size_t)i, ssrcs[i]);
    return (int)total;
}

/* Status symbol of packet i given to the transport-cc builder (already validated). */
static inline uint32_t tcc_status(const uint8_t *received, const int32_t *deltas, uint32_t i)
{
    if (!received[i])
        return MW_RTCP_TCC_NOT_RECEIVED;
    return (deltas[i] >= 0 && deltas[i] <= 255) ? MW_RTCP_TCC_SMALL_DELTA
                                                 : MW_RTCP_TCC_LARGE_DELTA;
}

/* Choose the next chunk at packet i: a run-length chunk for a run that covers the rest or
 * reaches 14 packets, a 1-bit vector when the next 14 need no large delta, a run again when it
 * reaches 7, else a 2-bit vector. Writes the chunk value and returns the packets it covers. */
static uint32_t tcc_next_chunk(const uint8_t *received, const int32_t *deltas, uint32_t i,
                               uint32_t n, uint32_t *chunk)
{
    uint32_t remaining = n - i;
    uint32_t first = tcc_status(received, deltas, i);
    uint32_t run = 1;
    while (run < remaining && run < TCC_MAX_RUN && tcc_status(received, deltas, i + run) == first)
        run++;
    if (run == remaining || run >= 14) {
        *chunk = (first << 13) | run;
        return run;
    }
    uint32_t window = remaining < 14 ? remaining : 14;
    int has_large = 0;
    for (uint32_t k = 0; k < window; k++)
        has_large |= tcc_status(received, deltas, i + k) == MW_RTCP_TCC_LARGE_DELTA;
    if (!has_large) {
        uint32_t value = 0x8000;
        for (uint32_t k = 0; k < window; k++)
            value |= tcc_status(received, deltas, i + k) << (13 - k);
        *chunk = value;
        return window;
    }
    if (run >= 7) {
        *chunk = (first << 13) | run;
        return run;
    }
    window = remaining < 7 ? remaining : 7;
    uint32_t value = 0xc000;
    for (uint32_t k = 0; k < window; k++)
        value |= tcc_status(received, deltas, i + k) << (12 - 2 * k);
    *chunk = value;
    return window;
}

int mw_rtcp_build_tcc(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t media_ssrc,
                      uint32_t base_seq, int32_t reference_time, uint32_t fb_count,
                      const uint8_t *received, const int32_t *deltas, uint32_t n)
{
    if (n > MW_RTCP_MAX_TCC_PACKETS || (n > 0 && (received == NULL || deltas == NULL)) ||
        base_seq > 0xffff || fb_count > 255 || reference_time < -0x800000 ||
        reference_time > 0x7fffff)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t delta_bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (received[i] && (deltas[i] < -32768 || deltas[i] > 32767))
            return -MW_RTCP_ERR_INVALID_ARGUMENT;
        delta_bytes += tcc_status(received, deltas, i);
    }
    size_t chunk_bytes = 0;
    for (uint32_t i = 0, chunk; i < n; chunk_bytes += 2)
        i += tcc_next_chunk(received, deltas, i, n, &chunk);
    size_t unpadded = HEADER_BYTES + TCC_FIXED_BYTES + chunk_bytes + delta_bytes;
    size_t total = (unpadded + 3) & ~(size_t)3;
    int err = begin_packet(out, cap, total, MW_RTCP_RTPFB_TCC, MW_RTCP_PT_RTPFB);
    if (err != MW_RTCP_OK)
        return err;
    write_feedback(out, sender_ssrc, media_ssrc);
    uint8_t *p = out + HEADER_BYTES + FEEDBACK_BYTES;
    wr16(p, base_seq);
    wr16(p + 2, n);
    wr24(p + 4, (uint32_t)reference_time & 0xffffffu);
    p[7] = (uint8_t)fb_count;
    p += 8;
    for (uint32_t i = 0, chunk = 0; i < n; p += 2) {
        i += tcc_next_chunk(received, deltas, i, n, &chunk);
        wr16(p, chunk);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = tcc_status(received, deltas, i);
        if (s == MW_RTCP_TCC_SMALL_DELTA) {
            *p++ = (uint8_t)deltas[i];
        } else if (s == MW_RTCP_TCC_LARGE_DELTA) {
            wr16(p, (uint32_t)deltas[i] & 0xffffu);
            p += 2;
        }
    }
    memset(p, 0, total - unpadded);
    return (int)total;
}

int mw_rtcp_build_xr(uint8_t *out, size_t cap, uint32_t sender_ssrc, uint32_t has_rrt,
                     uint64_t rrt_ntp, const struct mw_rtcp_dlrr *dlrr, uint32_t n)
{
    if ((n > 0 && dlrr == NULL) || n > MAX_LENGTH_WORDS / 3)
        return -MW_RTCP_ERR_INVALID_ARGUMENT;
    size_t total = HEADER_BYTES + 4 + (has_rrt ? 12 : 0) + (n > 0 ? 4 + 12 * (size_t)n : 0);
    int err = begin_packet(out, cap, total, 0, MW_RTCP_PT_XR);
    if (err != MW_RTCP_OK)
        return err;
    uint8_t *p = out + HEADER_BYTES;
    wr32(p, sender_ssrc);
    p += 4;
    if (has_rrt) {
        p[0] = XR_RRT;
        p[1] = 0;
        wr16(p + 2, 2);
        wr64(p + 4, rrt_ntp);
        p += 12;
    }
    if (n > 0) {
        p[0] = XR_DLRR;
        p[1] = 0;
        wr16(p + 2, 3 * n);
        p += 4;
        for (uint32_t i = 0; i < n; i++, p += 12) {
            wr32(p, dlrr[i].ssrc);
            wr32(p + 4, dlrr[i].lrr);
            wr32(p + 8, dlrr[i].dlrr);
        }
    }
    return (int)total;
}
