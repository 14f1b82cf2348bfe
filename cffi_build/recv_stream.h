/* mediaworker hot path: the receive-side statistics of one producer stream, per packet.
 *
 * struct mw_recv_stream holds the per-packet state of worker.rtp_stream_stats.RecvStreamStats
 * (which wraps it and owns it), so that the C receive path can account for a media packet with
 * no Python involved: RFC 3550 A.1 sequence validation (MAX_DROPOUT 3000, MAX_MISORDER 1500,
 * bad_seq and the re-sync after two sequential packets, the expected packets before the last
 * re-sync kept in expected_offset), the unwrapped highest RTP timestamp and the time it came,
 * the interarrival jitter of A.8 (in double precision, the same operations in the same order
 * as the Python, so the value is bit for bit the same), the packet, media packet and byte
 * counters, the bitrate over a sliding window (as RateCalculator: one entry per distinct
 * millisecond, entries older than now - window_ms dropped) and the inactivity bookkeeping.
 *
 * Numbers: extended sequence numbers and unwrapped timestamps are int64 (the Python's are
 * unbounded; they part only after 2^47 packets or 2^32 timestamp wraps). Times are ms on the
 * caller's clock (int64, any value: no arithmetic on them can overflow).
 *
 * Score: the score (0-10, its history, the "changed" flag) lives in Python. When a packet ends
 * an inactivity (inactive set by mw_recv_stream_timeout), the C only clears `inactive` and
 * records it (`reactivated` = 1, `reactivated_ms` = the packet's time); the wrapper resets the
 * score to 10 at that time, and clears `reactivated`, before anything reads or changes the
 * score. The inactivity deadline is last_activity_ms + inactivity_timeout_ms, or none when
 * inactivity_timeout_ms < 0 (no check), when paused or when inactive.
 *
 * Bitrate window: a ring of ring_size entries (window_ms + 1 is enough: on a clock that never
 * goes back, the entries left are distinct ms values in [now - window_ms, now]). A clock that
 * goes back can need more; then, the ring being full, a new millisecond's bytes are added to
 * the newest entry (they leave the window with it) instead of getting their own entry, where
 * the Python would grow its deque.
 *
 * Memory: the caller allocates the struct and the ring (Python: ffi.new) and keeps both alive
 * while the struct is in use; no function allocates, and none reads or writes outside the
 * struct and ring[0, ring_size). Not thread-safe: one stream is used by one thread at a time. */
#ifndef MW_RECV_STREAM_H
#define MW_RECV_STREAM_H

#include <stdint.h>

enum mw_recv_stream_limits {
    MW_RECV_STREAM_MAX_DROPOUT = 3000,   /* RFC 3550 A.1 */
    MW_RECV_STREAM_MAX_MISORDER = 1500,
    MW_RECV_STREAM_NO_BAD_SEQ = -1,      /* a bad_seq value: no packet is awaited */
    MW_RECV_STREAM_NO_TIMEOUT = -1       /* an inactivity_timeout_ms value: no check */
};

enum mw_recv_stream_status {
    MW_RECV_STREAM_OK = 0,
    MW_RECV_STREAM_ERR_ARGS = -1 /* nothing was written; a bug in the caller */
};

/* One millisecond's bytes in the bitrate window. */
struct mw_recv_rate_item {
    int64_t ms;
    uint64_t bytes;
};

/* All fields are written by the functions below; the wrapper writes clock_rate (when its
 * clock_rate changes), reactivated (to 0, once applied) and the five counters (as the Python
 * attributes they stand for). Flags are 0 or 1. */
struct mw_recv_stream {
    /* configuration */
    struct mw_recv_rate_item *ring; /* the bitrate window: ring_size entries */
    uint32_t ring_size;
    uint32_t window_ms;             /* the bitrate window (>= 1) */
    uint32_t clock_rate;            /* RTP clock rate in Hz; 0: no jitter is computed */
    uint8_t paused;                 /* mw_recv_stream_pause: no deadline, no jitter history */
    uint8_t inactive;               /* the deadline passed (mw_recv_stream_timeout) */
    uint8_t reactivated;            /* a packet ended the inactivity; the wrapper clears it */
    uint8_t started;                /* a packet was accepted: max_seq and base_seq are set */
    int64_t inactivity_timeout_ms;  /* MW_RECV_STREAM_NO_TIMEOUT or >= 0 */
    int64_t last_activity_ms;       /* what the deadline counts from */
    int64_t reactivated_ms;         /* when `reactivated` was set */
    /* RFC 3550 A.1 */
    int64_t base_seq;               /* extended: the first sequence number (since the re-sync) */
    int64_t max_seq;                /* extended: the highest sequence number */
    int64_t expected_offset;        /* expected packets before the last re-sync */
    int32_t bad_seq;                /* the sequence number that confirms a jump, or NO_BAD_SEQ */
    uint32_t transit;               /* A.8: the last transit time, mod 2^32 */
    uint8_t has_transit;            /* transit is set */
    uint8_t reserved[7];
    /* unwrapped highest RTP timestamp (+ 2^32, so it never goes below 0), and when it came */
    int64_t max_packet_ts;
    int64_t max_packet_ms;
    double jitter;                  /* A.8, in RTP timestamp units */
    /* counters */
    uint64_t packet_count;          /* media packets with a payload and repaired RTX packets */
    uint64_t media_packet_count;    /* media packets with a payload (the base of loss figures) */
    uint64_t packets_discarded;     /* invalid sequence numbers (media or RTX) */
    uint64_t packets_retransmitted; /* valid RTX packets, and NACKed packets without RTX */
    uint64_t packets_repaired;      /* RTX packets that brought a NACKed packet, ditto */
    uint64_t bytes;                 /* every counted packet's bytes, since the start */
    /* the bitrate window: ring[ring_head], ... the oldest first, ring_count entries */
    uint64_t window_bytes;          /* the sum of the entries' bytes */
    uint32_t ring_head;
    uint32_t ring_count;
};

/* Set up `s` for a stream created at now_ms (every field is written): the ring of ring_size
 * entries for a window of window_ms ms, the clock rate (0: no jitter), the inactivity timeout
 * (MW_RECV_STREAM_NO_TIMEOUT or >= 0). MW_RECV_STREAM_ERR_ARGS, with nothing written, when s or
 * ring is NULL, ring_size or window_ms is 0, or the timeout is below NO_TIMEOUT. */
int mw_recv_stream_init(struct mw_recv_stream *s, struct mw_recv_rate_item *ring,
                        uint32_t ring_size, uint32_t window_ms, uint32_t clock_rate,
                        int64_t inactivity_timeout_ms, int64_t now_ms);

/* A media packet of `size` bytes (whole packet) whose payload is payload_length bytes
 * (RecvStreamStats.receive_packet): 1 if valid, 0 if its sequence number is discarded (A.1,
 * counted in packets_discarded). A valid packet updates the jitter; one with a payload also
 * counts in packet_count, media_packet_count, the bytes and the bitrate, and is activity
 * (restarts the deadline, ends an inactivity). */
int mw_recv_stream_receive(struct mw_recv_stream *s, uint16_t seq, uint32_t timestamp,
                           uint32_t size, uint32_t payload_length, int64_t now_ms);

/* An RTX packet decoded to the original seq and timestamp (RecvStreamStats.receive_rtx_packet):
 * 1 if valid (counted in packets_retransmitted), 0 if discarded. No jitter, no activity. */
int mw_recv_stream_receive_rtx(struct mw_recv_stream *s, uint16_t seq, uint32_t timestamp,
                               int64_t now_ms);

/* The last RTX packet brought a packet we had NACKed (RecvStreamStats.rtx_packet_repaired):
 * with a payload, it counts in packets_repaired, packet_count, the bytes and the bitrate, and
 * is activity. A padding-only one (payload_length 0) is not counted. */
void mw_recv_stream_rtx_repaired(struct mw_recv_stream *s, uint32_t size,
                                 uint32_t payload_length, int64_t now_ms);

/* Without RTX, a media packet we had NACKed arrived: retransmitted and repaired. */
void mw_recv_stream_nacked_received(struct mw_recv_stream *s);

/* The bitrate in bits per second at now_ms: the window's bytes * 8000 / window_ms, rounded
 * half up (drops the entries that left the window, as RateCalculator.rate). */
uint64_t mw_recv_stream_bitrate(struct mw_recv_stream *s, int64_t now_ms);

/* Pause: no deadline and the jitter starts again from 0 after the resume. */
void mw_recv_stream_pause(struct mw_recv_stream *s);

/* Resume at now_ms: the deadline counts from now_ms (unless inactive: from the next packet). */
void mw_recv_stream_resume(struct mw_recv_stream *s, int64_t now_ms);

/* The inactivity timer at now_ms: 1 if the deadline has passed (now_ms >= deadline), which makes
 * the stream inactive (no deadline until the next packet); the caller then drops the score to
 * 0. 0 otherwise (no deadline, or not yet). The caller applies a pending `reactivated` first. */
int mw_recv_stream_timeout(struct mw_recv_stream *s, int64_t now_ms);

#endif
