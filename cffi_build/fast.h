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

#endif
