/* Key-frame detection from an RTP payload (the C twin of worker/keyframe.py, whose docstring
 * gives the rules; tests/reference/keyframe.py is the pure-Python reference it must match).
 * Preprocessor lines are skipped by the build script: every declaration stands without them. */
#ifndef MW_KEYFRAME_H
#define MW_KEYFRAME_H

#include <stddef.h>
#include <stdint.h>

/* The video codecs with a detector (worker.keyframe.keyframe_codec maps a MIME type to one;
 * H264-SVC uses MW_KEYFRAME_H264). */
enum mw_keyframe_codec {
    MW_KEYFRAME_NONE = 0,
    MW_KEYFRAME_VP8 = 1,
    MW_KEYFRAME_VP9 = 2,
    MW_KEYFRAME_H264 = 3,
    MW_KEYFRAME_H265 = 4,
    MW_KEYFRAME_AV1 = 5
};

/* 1 when the RTP payload (header and padding excluded) starts a key frame, 0 otherwise: for an
 * empty, truncated or malformed payload, for MW_KEYFRAME_NONE and for an unknown codec. Never
 * reads past payload[len - 1]. */
int mw_keyframe(int codec, const uint8_t *payload, size_t len);

#endif
