/* mediaworker hot path: RTCP compound walk, parsers and builders (RFC 3550, 4585, 5104, 3611, REMB, transport-cc). */
#include "rtcp.h"
