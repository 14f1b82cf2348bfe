/* mediaworker hot path: RTP header parse and in-place rewrite, header extensions, RTX (RFC 3550, 8285, 4588). */
#include "rtp.h"
