/* mediaworker hot path: RTCP compound walk, parsers and builders (RFC 3550, 4585, 5104, 3611, REMB, transport-cc). */
#ifndef MW_RTCP_H
#define MW_RTCP_H

#include <stddef.h>
#include <stdint.h>

#endif
