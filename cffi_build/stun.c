/* mediaworker hot path: STUN message parse and binding response build (RFC 5389/8489, ICE attributes of RFC 8445). */
#include "stun.h"
