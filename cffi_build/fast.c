/* mediaworker hot path. Every function here takes untrusted bytes from the network: it checks
 * lengths before every read and reports malformed input by its return value, never by a crash. */
#include "fast.h"

/* Minimum sizes: STUN header, DTLS record header, RTP fixed header, RTCP common header. */
static const size_t STUN_HEADER_BYTES = 20;
static const size_t DTLS_RECORD_HEADER_BYTES = 13;
static const size_t RTP_HEADER_BYTES = 12;
static const size_t RTCP_HEADER_BYTES = 4;

int mw_classify(const uint8_t *buf, size_t len)
{
    if (buf == NULL || len == 0)
        return MW_KIND_OTHER;

    uint8_t first = buf[0];

    /* RFC 7983: [0..3] STUN, [20..63] DTLS, [128..191] RTP/RTCP. */
    if (first <= 3)
        return len >= STUN_HEADER_BYTES ? MW_KIND_STUN : MW_KIND_OTHER;
    if (first >= 20 && first <= 63)
        return len >= DTLS_RECORD_HEADER_BYTES ? MW_KIND_DTLS : MW_KIND_OTHER;
    if (first >= 128 && first <= 191) {
        if (len < RTCP_HEADER_BYTES)
            return MW_KIND_OTHER;
        /* RFC 5761 section 4: packet types 192..223 are RTCP (payload types 64..95 with M=1). */
        uint8_t second = buf[1];
        if (second >= 192 && second <= 223)
            return MW_KIND_RTCP;
        return len >= RTP_HEADER_BYTES ? MW_KIND_RTP : MW_KIND_OTHER;
    }
    return MW_KIND_OTHER;
}

void mw_classify_slots(const uint8_t *slab, size_t slab_len, size_t slot_size,
                       const uint32_t *slots, const uint32_t *lengths, uint32_t n,
                       uint8_t *kinds)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t start = (size_t)slots[i] * slot_size;
        size_t len = lengths[i];
        if (slab == NULL || len > slot_size || start > slab_len || len > slab_len - start)
            kinds[i] = MW_KIND_OTHER;
        else
            kinds[i] = (uint8_t)mw_classify(slab + start, len);
    }
}
