/* mediaworker hot path: batched UDP receive and send (recvmmsg, sendmmsg) into caller-provided slots. */
#include "sockio.h"
