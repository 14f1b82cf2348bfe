/* mediaworker hot path: RTP header parse and in-place rewrite, header extensions, RTX (RFC 3550, 8285, 4588). */
#ifndef MW_RTP_H
#define MW_RTP_H

#include <stddef.h>
#include <stdint.h>

#endif
