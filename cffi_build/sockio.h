/* mediaworker hot path: batched UDP receive and send (recvmmsg, sendmmsg) into caller-provided slots. */
#ifndef MW_SOCKIO_H
#define MW_SOCKIO_H

#include <stddef.h>
#include <stdint.h>

#endif
