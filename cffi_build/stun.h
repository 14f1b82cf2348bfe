/* mediaworker hot path: STUN message parse and binding response build (RFC 5389/8489, ICE attributes of RFC 8445). */
#ifndef MW_STUN_H
#define MW_STUN_H

#include <stddef.h>
#include <stdint.h>

#endif
