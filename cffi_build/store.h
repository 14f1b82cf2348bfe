/* mediaworker hot path: the retransmission store of one producer stream (mediasoup's
 * RtpRetransmissionBuffer), so that the receive path can store a packet with no Python involved.
 * worker/retransmission_buffer.py wraps it; tests/reference/retransmission_buffer.py is the
 * pure-Python reference these rules are checked against.
 *
 * Each stored packet is a buffer-pool slot (its bytes), a length and the SSRC, sequence number
 * and RTP timestamp it was sent with, plus the resend state (resent_at_ms, sent_times).
 *
 * Unwrapping: 16-bit sequence numbers and 32-bit timestamps are extended to int64 values, each
 * the one congruent to the input nearest to a reference (half the number space away counts as
 * older); before any reference, value + 2^16 (resp. 2^32). The references are the last packet
 * that became the newest (or the only one), and are kept across clears, so wraparound never
 * breaks an ordering.
 *
 * Insert rules (mw_store_insert), in this order:
 * - closed: refused (not counted);
 * - empty: stored;
 * - lower seq and higher timestamp than the newest (the sender restarted): everything is
 *   cleared (not counted as evictions), then stored;
 * - age: every oldest packet whose timestamp is more than max_delay_ms (through clock_rate)
 *   behind max(its timestamp, the newest's) is evicted (evicted_by_age); if that empties the
 *   store, stored;
 * - newer than the newest: discarded if its timestamp is below the newest's; else the oldest are
 *   evicted until the span (oldest to newest seq, holes included) fits max_items
 *   (evicted_by_count; if even the newest would have to go, everything goes), then stored;
 * - older than the oldest: discarded if too old (as above, against the newest), if its timestamp
 *   is above the oldest's, or if the span would pass max_items; else stored;
 * - between: discarded if that seq is stored (duplicate), if its timestamp is below the nearest
 *   older packet's or above the nearest newer packet's; else stored.
 * Every refusal but "closed" counts one `discarded`.
 *
 * Layout: a ring of `capacity` (>= max_items) entries, extended seq e at entries[e mod
 * capacity] (floor modulo: e may be negative after restarts). Every stored packet lies in
 * [oldest, newest], whose span is at most max_items, so no two share an entry; an entry is
 * used only while its packet is stored.
 *
 * Ownership of slots: mw_store_insert returns 1 when the store took the slot, 0 when it refused
 * it (the caller still owns it). A taken slot is given back exactly once, on eviction (count or
 * age), mw_store_clear or mw_store_close: straight to `pool` with mw_pool_release when pool is
 * not NULL (a slot the pool refuses, i.e. not lent by it, is counted in release_errors and
 * dropped), else appended to evicted[0 .. evicted_count), which the owner must drain (read,
 * then set evicted_count to 0) after every call that may evict: one call never evicts more than
 * max_items, the array's size. Past it (an owner that does not drain) slots are counted in
 * release_errors and dropped. Clears give slots back oldest first.
 *
 * Memory: the struct, the entry array (capacity entries) and the evicted array (max_items
 * entries, may be NULL when pool is set) belong to the caller (the Python wrapper allocates them
 * with ffi.new and keeps them alive). The functions touch only those and the pool's arrays.
 * Never allocates. Not thread-safe: one store, one thread at a time. */
#ifndef MW_STORE_H
#define MW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

enum mw_store_limits {
    MW_STORE_DEFAULT_RTT_MS = 100,        /* the resend rule's RTT while the RTT is unknown */
    MW_STORE_NACK_MAX_PACKETS = 17        /* one NACK item: the PID and its 16-bit lost mask */
};

/* One ring entry. Meaningful only while `used`. */
struct mw_store_entry {
    int64_t seq;           /* extended sequence number */
    int64_t timestamp;     /* extended RTP timestamp */
    int64_t resent_at_ms;  /* when mw_store_resend last handed it out (valid when sent_times) */
    uint64_t serial;       /* unique per insert: tells a packet from a later one with its seq */
    uint32_t slot;         /* the pool slot holding the packet's bytes (the handle) */
    uint32_t length;       /* bytes in the slot */
    uint32_t ssrc;
    uint32_t sent_times;   /* times handed out by mw_store_resend (1: first retransmission) */
    uint32_t used;         /* non-zero while the packet is stored */
    uint32_t reserved;
};

struct mw_store {
    struct mw_store_entry *entries; /* the ring: capacity entries */
    uint32_t capacity;              /* >= max_items */
    uint32_t max_items;             /* bound on the span, holes included */
    uint32_t clock_rate;            /* RTP ticks per second */
    uint32_t max_delay_ms;          /* the age bound */
    uint64_t age_ticks;             /* set by mw_store_init: a packet this many ticks behind the
                                       newest, or more, is too old (= ceil((max_delay_ms + 1) *
                                       clock_rate / 1000): age_ms = ticks * 1000 // clock_rate
                                       above max_delay_ms, without overflow) */
    int64_t oldest;                 /* extended seq of the oldest stored packet (when count) */
    int64_t newest;                 /* extended seq of the newest stored packet (when count) */
    int64_t ref_seq;                /* unwrapping references (when has_ref), kept across clears */
    int64_t ref_ts;
    uint32_t count;                 /* packets stored */
    uint8_t has_ref;
    uint8_t closed;                 /* mw_store_close was called: every insert is refused */
    uint16_t reserved;
    uint64_t next_serial;
    uint64_t evicted_by_count;
    uint64_t evicted_by_age;
    uint64_t discarded;             /* inserts refused (duplicate, too old, out of order, far) */
    uint64_t release_errors;        /* slots dropped: the pool refused them, or evicted was full */
    struct mw_pool *pool;           /* non-NULL: evicted slots go straight back to it */
    uint32_t *evicted;              /* pool NULL: evicted slots are appended here (max_items) */
    uint32_t evicted_count;
    uint32_t reserved2;
};

/* Set up an empty store: entries (capacity entries, zeroed here), the evicted array (max_items
 * entries; may be NULL when pool is not NULL), the pool (may be NULL). Returns 0, or -1 (nothing
 * written) when s or entries is NULL, both pool and evicted are NULL, a number is 0, or capacity
 * is below max_items. */
int mw_store_init(struct mw_store *s, struct mw_store_entry *entries, uint32_t capacity,
                  uint32_t max_items, uint32_t clock_rate, uint32_t max_delay_ms,
                  struct mw_pool *pool, uint32_t *evicted);

/* Store a sent packet (see the rules at the top of this file). 1: the store took the slot; 0:
 * refused, the caller still owns it. */
int mw_store_insert(struct mw_store *s, uint16_t seq, uint32_t timestamp, uint32_t slot,
                    uint32_t length, uint32_t ssrc);

/* The entry of the stored packet with extended seq `seq`, or NULL. */
struct mw_store_entry *mw_store_at(struct mw_store *s, int64_t seq);

/* The stored packet with 16-bit sequence number seq (unwrapped against the newest), or NULL. */
struct mw_store_entry *mw_store_get(struct mw_store *s, uint16_t seq);

/* The packet to retransmit for a NACK of seq, or NULL: not stored, or handed out by this call
 * within the last rtt_ms (now - resent_at_ms <= rtt_ms; rtt_ms >= 0, the caller picks
 * MW_STORE_DEFAULT_RTT_MS when it does not know). Marks it resent: resent_at_ms = now,
 * sent_times + 1. now is milliseconds on the caller's clock. */
struct mw_store_entry *mw_store_resend(struct mw_store *s, uint16_t seq, int64_t now,
                                       int64_t rtt_ms);

/* Give every stored packet back (oldest first); returns how many. Not counted as evictions. */
uint32_t mw_store_clear(struct mw_store *s);

/* Clear, and refuse every later insert. Idempotent. Returns what the clear gave back. */
uint32_t mw_store_close(struct mw_store *s);

#endif
