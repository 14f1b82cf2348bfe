/* perf/fanout: the RTP stream the load generator sends and the receivers check, shared by
 * fanout_gen.c, fanout_recv.c and fanout_fwd.c (each a program of its own, compiled by
 * perf/fanout.py with the system cc; header-only, every function static).
 *
 * One packet of run `run`, index i (0 <= i < count), is
 *
 *     RTP fixed header (12 bytes): V=2, no padding, extension or CSRC; payload type and SSRC of
 *         the producer; sequence number seq0 + i; timestamp ts(i) (below); marker as below
 *     payload (`payload` bytes, FO_MIN_PAYLOAD..FO_MAX_PAYLOAD):
 *         0   4-byte codec prefix (fo_prefix)
 *         4   magic "FOUT"            (big endian, like every field)
 *         8   run id
 *         12  index i
 *         16  the sequence number sent (seq0 + i, 16 bits), 2 zero bytes
 *         20  the timestamp sent
 *         24  filler: fo_pattern from offset (i & 255)
 *
 * Video streams are VP8-shaped: FO_VIDEO_FRAME_PACKETS packets per frame share a timestamp
 * (FO_VIDEO_TS_STEP apart at 90 kHz), the marker is set on a frame's last packet, and the prefix
 * is a VP8 payload descriptor (S bit on a frame's first packet) followed by a VP8 frame tag that
 * says key frame on every kf_interval-th packet (0: never), which the worker's key-frame
 * detector recognises. Audio streams are Opus-shaped: one packet per 20 ms frame (timestamp
 * step 960 at 48 kHz), no marker, a fixed prefix. Nothing but the worker's key-frame detection
 * looks at the prefix.
 *
 * Everything a receiver checks follows from (stream, index), so a receiver can rebuild the exact
 * payload of any packet without keeping what was sent. */
#ifndef FANOUT_H
#define FANOUT_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <string.h>
#include <time.h>

#define FO_HEADER_BYTES 12
#define FO_PREFIX_BYTES 4
#define FO_FIELDS_END 24
#define FO_MIN_PAYLOAD FO_FIELDS_END
#define FO_MAX_PAYLOAD 1400
#define FO_MAGIC 0x464F5554u /* "FOUT" */
#define FO_PATTERN_SHIFTS 256
#define FO_VIDEO_FRAME_PACKETS 10
#define FO_VIDEO_TS_STEP 3000u
#define FO_AUDIO_TS_STEP 960u
#define FO_SLOT 2048 /* receive and send slot: a packet plus any SRTP trailer */
#define FO_BATCH 64  /* datagrams per recvmmsg / sendmmsg call */
#define FO_SRTP_TRAILER_MAX 16

struct fo_stream {
    int video;            /* 1: VP8-shaped, 0: Opus-shaped */
    uint32_t payload;     /* payload bytes of every packet */
    uint32_t kf_interval; /* video: a key frame every kf_interval packets (0: none) */
    uint32_t run;         /* run id written in every payload */
    uint32_t count;       /* packets in the run */
    uint8_t pt;           /* payload type sent */
    uint32_t ssrc;        /* SSRC sent */
    uint16_t seq0;        /* sequence number of index 0 */
    uint32_t ts0;         /* timestamp of index 0 */
};

static uint8_t fo_pattern[FO_MAX_PAYLOAD + FO_PATTERN_SHIFTS];

/* Fill the filler pattern from a fixed seed (xorshift32): the same bytes in every program. */
static inline void fo_pattern_init(void)
{
    uint32_t x = 0x9E3779B9u;
    for (size_t k = 0; k < sizeof fo_pattern; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fo_pattern[k] = (uint8_t)(x >> 24);
    }
}

static inline void fo_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t fo_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t fo_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline int fo_marker(const struct fo_stream *s, uint32_t i)
{
    return s->video && i % FO_VIDEO_FRAME_PACKETS == FO_VIDEO_FRAME_PACKETS - 1;
}

static inline uint32_t fo_timestamp(const struct fo_stream *s, uint32_t i)
{
    if (s->video)
        return s->ts0 + (i / FO_VIDEO_FRAME_PACKETS) * FO_VIDEO_TS_STEP;
    return s->ts0 + i * FO_AUDIO_TS_STEP;
}

static inline uint16_t fo_seq(const struct fo_stream *s, uint32_t i)
{
    return (uint16_t)(s->seq0 + i);
}

static inline void fo_prefix(const struct fo_stream *s, uint32_t i, uint8_t out[FO_PREFIX_BYTES])
{
    if (!s->video) {
        out[0] = 0x78; /* an Opus TOC byte (SILK+CELT hybrid, 20 ms, mono, one frame) */
        out[1] = 0x0B;
        out[2] = 0x0E;
        out[3] = 0x0D;
        return;
    }
    int first = i % FO_VIDEO_FRAME_PACKETS == 0;
    int key = first && s->kf_interval && i % s->kf_interval == 0;
    out[0] = first ? 0x10 : 0x00; /* VP8 descriptor: S on a frame's first packet, PID 0 */
    out[1] = key ? 0x10 : 0x11;   /* frame tag: P bit clear on a key frame, show_frame */
    out[2] = 0x00;
    out[3] = 0x00;
}

/* The payload of packet i, without its filler (the first FO_FIELDS_END bytes). */
static inline void fo_fields(const struct fo_stream *s, uint32_t i, uint8_t out[FO_FIELDS_END])
{
    fo_prefix(s, i, out);
    fo_put32(out + 4, FO_MAGIC);
    fo_put32(out + 8, s->run);
    fo_put32(out + 12, i);
    fo_put32(out + 16, (uint32_t)fo_seq(s, i) << 16);
    fo_put32(out + 20, fo_timestamp(s, i));
}

static inline const uint8_t *fo_filler(uint32_t i) { return fo_pattern + (i & 0xFF); }

/* Write packet i of `s` into `buf` (room for 12 + s->payload bytes); returns its length. */
static inline size_t fo_build(const struct fo_stream *s, uint32_t i, uint8_t *buf)
{
    buf[0] = 0x80;
    buf[1] = (uint8_t)((fo_marker(s, i) ? 0x80 : 0) | (s->pt & 0x7F));
    buf[2] = (uint8_t)(fo_seq(s, i) >> 8);
    buf[3] = (uint8_t)fo_seq(s, i);
    fo_put32(buf + 4, fo_timestamp(s, i));
    fo_put32(buf + 8, s->ssrc);
    fo_fields(s, i, buf + FO_HEADER_BYTES);
    memcpy(buf + FO_HEADER_BYTES + FO_FIELDS_END, fo_filler(i), s->payload - FO_FIELDS_END);
    return FO_HEADER_BYTES + s->payload;
}

/* Point the FO_BATCH receive headers at the FO_BATCH slots, before each recvmmsg. */
static inline void fo_rx_prepare(struct mmsghdr *msgs, struct iovec *iov,
                                 uint8_t (*slots)[FO_SLOT])
{
    for (unsigned k = 0; k < FO_BATCH; k++) {
        iov[k].iov_base = slots[k];
        iov[k].iov_len = FO_SLOT;
        memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
        msgs[k].msg_hdr.msg_iov = &iov[k];
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
}

static inline int64_t fo_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
