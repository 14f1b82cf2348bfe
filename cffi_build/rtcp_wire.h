/* mediaworker hot path: what rtcp.c (parsers) and rtcp_build.c (builders) share: wire sizes
 * and big-endian byte access. Private: not part of the cffi declarations. */
#ifndef MW_RTCP_WIRE_H
#define MW_RTCP_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Sizes (bytes) and limits of RTCP's wire format. Enums, not static consts, so that a file that
 * does not use one of them does not warn. */
enum {
    HEADER_BYTES = 4,
    FEEDBACK_BYTES = 8,       /* sender SSRC + media SSRC */
    REPORT_BLOCK_BYTES = 24,
    SENDER_INFO_BYTES = 24,   /* sender SSRC + NTP + RTP ts + counts */
    TCC_FIXED_BYTES = 16,     /* feedback header + base/count + ref time/fb count */
    MAX_LENGTH_WORDS = 65535,
    TCC_MAX_RUN = 8191
};

/* SDES item types (RFC 3550 6.5) and XR block types (RFC 3611 4.4, 4.5). */
enum { SDES_END = 0, SDES_CNAME = 1 };
enum { XR_RRT = 4, XR_DLRR = 5 };

/* ---- byte access ------------------------------------------------------------------------ */

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }

static inline uint32_t rd24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t rd64(const uint8_t *p) { return ((uint64_t)rd32(p) << 32) | rd32(p + 4); }

static inline int32_t sign24(uint32_t v)
{
    return (v & 0x800000u) ? (int32_t)v - 0x1000000 : (int32_t)v;
}

static inline void wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void wr24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)(v >> 32));
    wr32(p + 4, (uint32_t)v);
}

#endif
