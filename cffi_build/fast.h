/* mediaworker hot path: the declarations cffi reads (preprocessor lines are skipped by the
 * build script, so every declaration below must stand without macros). */
#ifndef MW_FAST_H
#define MW_FAST_H

#include <stddef.h>
#include <stdint.h>

/* Datagram kinds (RFC 7983 demultiplexing; RTP and RTCP told apart as RFC 5761 says). */
enum mw_kind {
    MW_KIND_OTHER = 0,
    MW_KIND_STUN = 1,
    MW_KIND_DTLS = 2,
    MW_KIND_RTP = 3,
    MW_KIND_RTCP = 4
};

/* Classify one datagram. Never reads past buf[len - 1]. */
int mw_classify(const uint8_t *buf, size_t len);

/* Classify n datagrams held in fixed-size slots of a slab (a receive batch): datagram i is
 * lengths[i] bytes at slab + slots[i] * slot_size. kinds[i] gets its enum mw_kind; a datagram
 * that does not lie inside the slab is MW_KIND_OTHER. */
void mw_classify_slots(const uint8_t *slab, size_t slab_len, size_t slot_size,
                       const uint32_t *slots, const uint32_t *lengths, uint32_t n,
                       uint8_t *kinds);

#endif
