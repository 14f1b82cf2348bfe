/* mediaworker hot path: the receive-side statistics of one producer stream (see recv_stream.h).
 *
 * A line-for-line port of RecvStreamStats' per-packet methods (tests/reference/recv_stream.py
 * keeps the Python they came from; tests/test_recv_stream.py compares the two). Modular
 * arithmetic is done on unsigned types, so nothing here is undefined behaviour whatever the
 * input: the Python's `x & 0xFFFF` of a possibly negative x is the same as C's unsigned
 * wraparound, and its floor division is written out for negative times. No function
 * allocates. */
#include "recv_stream.h"

#include <stddef.h>
#include <string.h>

enum {
    SEQ_MOD = 1 << 16,
    MS_PER_S = 1000
};

static const int64_t TIMESTAMP_MOD = INT64_C(1) << 32;

/* a + b for int64 values, in the two's complement wraparound (no undefined overflow); only
 * reachable past the int64 range documented in recv_stream.h. */
static int64_t wrapping_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

/* ---- the bitrate window (RateCalculator) ---------------------------------------------------- */

static uint32_t ring_index(const struct mw_recv_stream *s, uint32_t k)
{
    /* head < ring_size and k <= ring_size: one subtraction brings i back, and a sum past
     * UINT32_MAX shows as i < head. */
    uint32_t i = s->ring_head + k;
    return (i >= s->ring_size || i < s->ring_head) ? i - s->ring_size : i;
}

/* Drop the entries older than now - window_ms (an entry at exactly that time still counts). */
static void rate_trim(struct mw_recv_stream *s, int64_t now)
{
    /* The Python's cutoff may be below INT64_MIN, where no entry is older: nothing to drop. */
    if (now < INT64_MIN + (int64_t)s->window_ms)
        return;
    int64_t cutoff = now - (int64_t)s->window_ms;
    while (s->ring_count > 0 && s->ring[s->ring_head].ms < cutoff) {
        s->window_bytes -= s->ring[s->ring_head].bytes;
        s->ring_head = ring_index(s, 1);
        s->ring_count--;
    }
}

/* RateCalculator.update: the bytes join the newest entry when it is of the same ms, else a new
 * entry; then the entries older than now - window_ms go. Here the trim comes first, with the
 * same result (the Python's walk from the oldest stops at the latest at an entry of now, never
 * older than the cutoff, so such an entry is there before and after), and that leaves room: on
 * a clock that never goes back, the entries left are then distinct ms values in
 * [now - window_ms, now], at most window_ms of them before now, so a new one always fits in
 * window_ms + 1. */
static void rate_update(struct mw_recv_stream *s, uint32_t size, int64_t now)
{
    rate_trim(s, now);
    s->bytes += size;
    s->window_bytes += size;
    if (s->ring_count > 0) {
        struct mw_recv_rate_item *last = &s->ring[ring_index(s, s->ring_count - 1)];
        /* The same ms as the newest entry; or the ring is full, which only a clock going back
         * can do (see recv_stream.h): the bytes go to the newest entry. */
        if (last->ms == now || s->ring_count == s->ring_size) {
            last->bytes += size;
            return;
        }
    }
    struct mw_recv_rate_item *item = &s->ring[ring_index(s, s->ring_count)];
    item->ms = now;
    item->bytes = size;
    s->ring_count++;
}

uint64_t mw_recv_stream_bitrate(struct mw_recv_stream *s, int64_t now_ms)
{
    rate_trim(s, now_ms);
    /* int(total * (8000 / window) + 0.5) in Python: the same double operations, in the same
     * order (-std=c11 keeps gcc from fusing the multiply and the add). */
    double per_byte = 8000.0 / (double)s->window_ms;
    double bits = (double)s->window_bytes * per_byte + 0.5;
    /* Beyond 2^64 (2^61 bytes in a window) the conversion would be undefined: saturate. */
    return bits >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)bits;
}

/* ---- RFC 3550 A.1 and the highest timestamp ------------------------------------------------ */

static void restart_max_timestamp(struct mw_recv_stream *s, uint32_t timestamp, int64_t now)
{
    s->max_packet_ts = (int64_t)timestamp + TIMESTAMP_MOD;
    s->max_packet_ms = now;
}

/* 1 if `seq` is valid, 0 if discarded (counted). */
static int update_seq(struct mw_recv_stream *s, uint16_t seq, uint32_t timestamp, int64_t now)
{
    int64_t max_seq = s->max_seq;
    if (!s->started) {
        s->base_seq = seq;
        max_seq = (int64_t)seq - 1;
        restart_max_timestamp(s, timestamp, now);
    }
    uint32_t udelta = ((uint32_t)seq - (uint32_t)((uint64_t)max_seq & 0xFFFF)) & 0xFFFF;
    if (udelta < MW_RECV_STREAM_MAX_DROPOUT) {
        s->max_seq = wrapping_add(max_seq, udelta);
        s->started = 1;
    } else if (udelta <= SEQ_MOD - MW_RECV_STREAM_MAX_MISORDER) {
        /* Only reachable once started (the first packet's udelta is 1): max_seq >= 0. */
        if ((int32_t)seq != s->bad_seq) {
            s->bad_seq = (int32_t)((seq + 1u) & 0xFFFF);
            s->packets_discarded++;
            return 0;
        }
        /* Two sequential packets after a big jump: the sender restarted; re-sync, and keep
         * counting the expected packets from where they were. */
        s->expected_offset = wrapping_add(s->expected_offset,
                                          wrapping_add(wrapping_add(max_seq, -s->base_seq), 1));
        s->max_seq = s->base_seq = wrapping_add((int64_t)((uint64_t)max_seq & ~(uint64_t)0xFFFF),
                                                seq);
        s->bad_seq = MW_RECV_STREAM_NO_BAD_SEQ;
        restart_max_timestamp(s, timestamp, now);
        return 1;
    }
    /* Unwrap the timestamp to the value nearest the highest (half-way: the older one). */
    uint32_t delta = timestamp - (uint32_t)(uint64_t)s->max_packet_ts;
    int64_t signed_delta = delta >= 0x80000000u ? (int64_t)delta - TIMESTAMP_MOD : (int64_t)delta;
    int64_t ts = wrapping_add(s->max_packet_ts, signed_delta);
    if (ts > s->max_packet_ts) {
        s->max_packet_ts = ts;
        s->max_packet_ms = now;
    }
    return 1;
}

/* ---- A.8 jitter ------------------------------------------------------------------------------ */

/* (now * clock_rate // 1000) mod 2^32, with Python's floor division, exact for any now: with
 * now = q * 1000 + r (0 <= r < 1000), it is q * clock_rate + r * clock_rate // 1000, whose
 * first term is only needed mod 2^32 (unsigned wraparound) and whose second fits 64 bits. */
static uint32_t arrival_in_rtp_units(int64_t now, uint32_t clock_rate)
{
    int64_t q = now / MS_PER_S;
    int64_t r = now % MS_PER_S;
    if (r < 0) {
        r += MS_PER_S;
        q -= 1;
    }
    uint64_t whole = (uint64_t)q * clock_rate;
    uint64_t part = (uint64_t)r * clock_rate / MS_PER_S;
    return (uint32_t)(whole + part);
}

static void update_jitter(struct mw_recv_stream *s, uint32_t timestamp, int64_t now)
{
    if (s->clock_rate == 0)
        return;
    uint32_t transit = arrival_in_rtp_units(now, s->clock_rate) - timestamp;
    uint32_t previous = s->transit;
    int had_transit = s->has_transit;
    s->transit = transit;
    s->has_transit = 1;
    if (!had_transit)
        return;
    /* The difference as a signed 32-bit value, then |d| (at most 2^31: exact as a double). */
    int64_t d = (int64_t)(uint32_t)(transit - previous + 0x80000000u) - INT64_C(0x80000000);
    double magnitude = (double)(d < 0 ? -d : d);
    s->jitter += (magnitude - s->jitter) / 16.0;
}

/* ---- activity and the deadline -------------------------------------------------------------- */

static void activity(struct mw_recv_stream *s, int64_t now)
{
    if (s->inactive) {
        s->inactive = 0;
        s->reactivated = 1; /* the wrapper resets the score to 10 at reactivated_ms */
        s->reactivated_ms = now;
    }
    if (s->inactivity_timeout_ms >= 0 && !s->paused)
        s->last_activity_ms = now;
}

/* ---- entry points ----------------------------------------------------------------------------- */

int mw_recv_stream_init(struct mw_recv_stream *s, struct mw_recv_rate_item *ring,
                        uint32_t ring_size, uint32_t window_ms, uint32_t clock_rate,
                        int64_t inactivity_timeout_ms, int64_t now_ms)
{
    if (s == NULL || ring == NULL || ring_size == 0 || window_ms == 0 ||
        inactivity_timeout_ms < MW_RECV_STREAM_NO_TIMEOUT)
        return MW_RECV_STREAM_ERR_ARGS;
    memset(s, 0, sizeof(*s));
    s->ring = ring;
    s->ring_size = ring_size;
    s->window_ms = window_ms;
    s->clock_rate = clock_rate;
    s->inactivity_timeout_ms = inactivity_timeout_ms;
    s->last_activity_ms = now_ms;
    s->bad_seq = MW_RECV_STREAM_NO_BAD_SEQ;
    s->jitter = 0.0;
    return MW_RECV_STREAM_OK;
}

int mw_recv_stream_receive(struct mw_recv_stream *s, uint16_t seq, uint32_t timestamp,
                           uint32_t size, uint32_t payload_length, int64_t now_ms)
{
    if (!update_seq(s, seq, timestamp, now_ms))
        return 0;
    update_jitter(s, timestamp, now_ms);
    if (payload_length == 0)
        return 1; /* padding only: counts for the jitter alone */
    s->packet_count++;
    s->media_packet_count++;
    rate_update(s, size, now_ms);
    activity(s, now_ms);
    return 1;
}

int mw_recv_stream_receive_rtx(struct mw_recv_stream *s, uint16_t seq, uint32_t timestamp,
                               int64_t now_ms)
{
    if (!update_seq(s, seq, timestamp, now_ms))
        return 0;
    s->packets_retransmitted++;
    return 1;
}

void mw_recv_stream_rtx_repaired(struct mw_recv_stream *s, uint32_t size,
                                 uint32_t payload_length, int64_t now_ms)
{
    if (payload_length == 0)
        return;
    s->packets_repaired++;
    s->packet_count++;
    rate_update(s, size, now_ms);
    activity(s, now_ms);
}

void mw_recv_stream_nacked_received(struct mw_recv_stream *s)
{
    s->packets_retransmitted++;
    s->packets_repaired++;
}

void mw_recv_stream_pause(struct mw_recv_stream *s)
{
    s->paused = 1;
    s->has_transit = 0;
    s->jitter = 0.0;
}

void mw_recv_stream_resume(struct mw_recv_stream *s, int64_t now_ms)
{
    s->paused = 0;
    if (s->inactivity_timeout_ms >= 0 && !s->inactive)
        s->last_activity_ms = now_ms;
}

int mw_recv_stream_timeout(struct mw_recv_stream *s, int64_t now_ms)
{
    if (s->inactivity_timeout_ms < 0 || s->paused || s->inactive)
        return 0; /* no deadline */
    /* now >= last_activity + timeout, where the Python's sum may exceed INT64_MAX (never
     * reached then); the timeout is >= 0, so the subtraction cannot overflow downwards. */
    if (s->last_activity_ms > INT64_MAX - s->inactivity_timeout_ms ||
        now_ms < s->last_activity_ms + s->inactivity_timeout_ms)
        return 0;
    s->inactive = 1;
    return 1;
}
