/* Key-frame detection from an RTP payload, for every video codec the router supports. The
 * payload is untrusted network input: every read is checked against len first. Each detector
 * gives exactly the answer of its Python reference (tests/reference/keyframe.py) for every
 * input; worker/keyframe.py's docstring states the rules and their RFCs. */
#include "keyframe.h"

/* H264 NAL unit types (RFC 6184 section 5.2, ITU-T H.264 table 7-1). */
static const uint8_t H264_IDR = 5;
static const uint8_t H264_SPS = 7;
static const uint8_t H264_STAP_A = 24;
static const uint8_t H264_STAP_B = 25;
static const uint8_t H264_FU_A = 28;
static const uint8_t H264_FU_B = 29;
static const uint8_t H264_TYPE_MASK = 0x1F;
/* An FU header (S|E|R|Type) with the start bit and a key type, E and R masked out. */
static const uint8_t H264_FU_START_MASK = 0x9F;
static const uint8_t H264_FU_START = 0x80;
static const size_t H264_STAP_A_UNITS = 1; /* after the STAP-A NAL header */
static const size_t H264_STAP_B_UNITS = 3; /* after the header and the 16-bit DON */

/* H265 NAL unit types (RFC 7798 section 1.1.4, ITU-T H.265 table 7-1). */
static const uint8_t H265_AP = 48;
static const uint8_t H265_FU = 49;
static const size_t H265_NAL_HEADER_BYTES = 2;
static const uint8_t H265_FU_START = 0x80; /* FU header: S E FuType(6) */
static const uint8_t H265_FU_TYPE_MASK = 0x3F;

/* VP8 payload descriptor (RFC 7741 section 4.2). */
static const uint8_t VP8_X = 0x80;
static const uint8_t VP8_S_PID_MASK = 0x17; /* S bit and the 3 PID bits; R and N are ignored */
static const uint8_t VP8_S_PID0 = 0x10;
static const uint8_t VP8_I = 0x80;
static const uint8_t VP8_L = 0x40;
static const uint8_t VP8_T_OR_K = 0x30;
static const uint8_t VP8_M = 0x80;
static const uint8_t VP8_INTER_FRAME = 0x01; /* P bit of the VP8 payload header */

/* VP9 payload descriptor (RFC 9628 section 4.2). */
static const uint8_t VP9_I = 0x80;
static const uint8_t VP9_P_B_MASK = 0x48; /* P (inter-picture predicted) and B (start of frame) */
static const uint8_t VP9_B_ONLY = 0x08;
static const uint8_t VP9_L = 0x20;
static const uint8_t VP9_M = 0x80;
static const uint8_t VP9_SID_MASK = 0x0E; /* TID(3) U SID(3) D */

/* AV1 aggregation header: Z Y W(2) N - - -. */
static const uint8_t AV1_Z_N_MASK = 0x88;
static const uint8_t AV1_N_ONLY = 0x08;

static int vp8_keyframe(const uint8_t *p, size_t n)
{
    if (n < 2 || (p[0] & VP8_S_PID_MASK) != VP8_S_PID0)
        return 0;
    size_t offset = 1;
    if (p[0] & VP8_X) {
        uint8_t ext = p[1];
        offset = 2;
        if (ext & VP8_I) {
            if (offset >= n)
                return 0;
            offset += (p[offset] & VP8_M) ? 2 : 1;
        }
        if (ext & VP8_L)
            offset += 1;
        if (ext & VP8_T_OR_K)
            offset += 1;
    }
    return offset < n && !(p[offset] & VP8_INTER_FRAME);
}

static int vp9_keyframe(const uint8_t *p, size_t n)
{
    if (n < 1)
        return 0;
    uint8_t b0 = p[0];
    if ((b0 & VP9_P_B_MASK) != VP9_B_ONLY)
        return 0;
    if (!(b0 & VP9_L))
        return 1; /* no layer byte: spatial layer 0 */
    size_t offset = 1;
    if (b0 & VP9_I) {
        if (n < 2)
            return 0;
        offset = (p[1] & VP9_M) ? 3 : 2;
    }
    return offset < n && !(p[offset] & VP9_SID_MASK);
}

static int h264_key_type(uint8_t nal_type)
{
    return nal_type == H264_IDR || nal_type == H264_SPS;
}

/* Walk the (16-bit size, NAL unit) pairs of a STAP from offset. */
static int h264_aggregate(const uint8_t *p, size_t offset, size_t n)
{
    while (offset + 2 < n) {
        size_t size = ((size_t)p[offset] << 8) | p[offset + 1];
        offset += 2; /* offset < n from here */
        if (size == 0 || size > n - offset)
            return 0;
        if (h264_key_type(p[offset] & H264_TYPE_MASK))
            return 1;
        offset += size;
    }
    return 0;
}

static int h264_keyframe(const uint8_t *p, size_t n)
{
    if (n < 1)
        return 0;
    uint8_t nal_type = p[0] & H264_TYPE_MASK;
    if (h264_key_type(nal_type))
        return 1;
    if (nal_type == H264_FU_A || nal_type == H264_FU_B) {
        if (n < 2)
            return 0;
        uint8_t start = p[1] & H264_FU_START_MASK;
        return start == (H264_FU_START | H264_IDR) || start == (H264_FU_START | H264_SPS);
    }
    if (nal_type == H264_STAP_A)
        return h264_aggregate(p, H264_STAP_A_UNITS, n);
    if (nal_type == H264_STAP_B)
        return h264_aggregate(p, H264_STAP_B_UNITS, n);
    return 0;
}

/* IDR_W_RADL, IDR_N_LP, CRA, VPS, SPS, PPS. */
static int h265_key_type(uint8_t nal_type)
{
    return (nal_type >= 19 && nal_type <= 21) || (nal_type >= 32 && nal_type <= 34);
}

static uint8_t h265_nal_type(uint8_t first)
{
    return (first >> 1) & 0x3F;
}

/* Walk the (16-bit size, NAL unit) pairs of an aggregation packet (no DONL fields). */
static int h265_aggregate(const uint8_t *p, size_t n)
{
    size_t offset = H265_NAL_HEADER_BYTES;
    while (offset + 2 < n) {
        size_t size = ((size_t)p[offset] << 8) | p[offset + 1];
        offset += 2; /* offset < n from here */
        if (size < H265_NAL_HEADER_BYTES || size > n - offset)
            return 0;
        if (h265_key_type(h265_nal_type(p[offset])))
            return 1;
        offset += size;
    }
    return 0;
}

static int h265_keyframe(const uint8_t *p, size_t n)
{
    if (n < H265_NAL_HEADER_BYTES)
        return 0;
    uint8_t nal_type = h265_nal_type(p[0]);
    if (h265_key_type(nal_type))
        return 1;
    if (nal_type == H265_FU)
        return n >= 3 && (p[2] & H265_FU_START) && h265_key_type(p[2] & H265_FU_TYPE_MASK);
    if (nal_type == H265_AP)
        return h265_aggregate(p, n);
    return 0;
}

static int av1_keyframe(const uint8_t *p, size_t n)
{
    return n >= 1 && (p[0] & AV1_Z_N_MASK) == AV1_N_ONLY;
}

int mw_keyframe(int codec, const uint8_t *payload, size_t len)
{
    if (payload == NULL || len == 0)
        return 0;
    switch (codec) {
    case MW_KEYFRAME_VP8:
        return vp8_keyframe(payload, len);
    case MW_KEYFRAME_VP9:
        return vp9_keyframe(payload, len);
    case MW_KEYFRAME_H264:
        return h264_keyframe(payload, len);
    case MW_KEYFRAME_H265:
        return h265_keyframe(payload, len);
    case MW_KEYFRAME_AV1:
        return av1_keyframe(payload, len);
    default:
        return 0;
    }
}
