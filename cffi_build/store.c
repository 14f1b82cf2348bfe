/* mediaworker hot path: the retransmission store (see store.h for the rules). Each function
 * below mirrors one method of tests/reference/retransmission_buffer.py. */
#include "store.h"

#include <string.h>

static const int64_t SEQ_SPACE = INT64_C(1) << 16;
static const int64_t TIMESTAMP_SPACE = INT64_C(1) << 32;

int mw_store_init(struct mw_store *s, struct mw_store_entry *entries, uint32_t capacity,
                  uint32_t max_items, uint32_t clock_rate, uint32_t max_delay_ms,
                  struct mw_pool *pool, uint32_t *evicted)
{
    if (s == NULL || entries == NULL || (pool == NULL && evicted == NULL) || max_items == 0 ||
        capacity < max_items || clock_rate == 0 || max_delay_ms == 0)
        return -1;
    memset(s, 0, sizeof(*s));
    memset(entries, 0, (size_t)capacity * sizeof(*entries));
    s->entries = entries;
    s->capacity = capacity;
    s->max_items = max_items;
    s->clock_rate = clock_rate;
    s->max_delay_ms = max_delay_ms;
    /* (max_delay_ms + 1) * clock_rate < 2^64: both factors are at most 2^32. */
    s->age_ticks = ((uint64_t)max_delay_ms + 1) * clock_rate;
    s->age_ticks = s->age_ticks / 1000 + (s->age_ticks % 1000 != 0);
    s->pool = pool;
    s->evicted = evicted;
    return 0;
}

/* ---- unwrapping --------------------------------------------------------------------------- */

/* The value congruent to `value` mod `space` (a power of two) nearest to `reference`; half the
 * space away is the older one. The unsigned arithmetic is the two's complement modulo. */
static int64_t unwrap(uint64_t value, int64_t reference, int64_t space)
{
    uint64_t mask = (uint64_t)space - 1;
    int64_t delta = (int64_t)((value - (uint64_t)reference) & mask);
    if (delta >= space / 2)
        delta -= space;
    return reference + delta;
}

static int64_t extend_seq(const struct mw_store *s, uint16_t seq)
{
    return s->has_ref ? unwrap(seq, s->ref_seq, SEQ_SPACE) : (int64_t)seq + SEQ_SPACE;
}

static int64_t extend_ts(const struct mw_store *s, uint32_t timestamp)
{
    return s->has_ref ? unwrap(timestamp, s->ref_ts, TIMESTAMP_SPACE)
                      : (int64_t)timestamp + TIMESTAMP_SPACE;
}

/* ---- the ring ----------------------------------------------------------------------------- */

/* Floor modulo: seq may be negative (restarts can move the references down). */
static uint32_t index_of(const struct mw_store *s, int64_t seq)
{
    int64_t index = seq % (int64_t)s->capacity;
    return (uint32_t)(index < 0 ? index + s->capacity : index);
}

static struct mw_store_entry *entry(struct mw_store *s, int64_t seq)
{
    return &s->entries[index_of(s, seq)];
}

struct mw_store_entry *mw_store_at(struct mw_store *s, int64_t seq)
{
    if (s->count == 0 || seq < s->oldest || seq > s->newest)
        return NULL;
    struct mw_store_entry *e = entry(s, seq);
    return e->used ? e : NULL;
}

/* ---- giving slots back -------------------------------------------------------------------- */

static void give_back(struct mw_store *s, uint32_t slot)
{
    if (s->pool != NULL) {
        if (mw_pool_release(s->pool, slot) != 0)
            s->release_errors++;
    } else if (s->evicted != NULL && s->evicted_count < s->max_items) {
        s->evicted[s->evicted_count++] = slot;
    } else {
        s->release_errors++; /* the owner did not drain: the slot is lost, memory is safe */
    }
}

/* Remove the oldest packet and give its slot back; the next stored one becomes the oldest. */
static void remove_oldest(struct mw_store *s)
{
    struct mw_store_entry *e = entry(s, s->oldest);
    e->used = 0;
    s->count--;
    if (s->count) {
        int64_t seq = s->oldest + 1;
        while (!entry(s, seq)->used) /* the newest is used: the walk stops there at the latest */
            seq++;
        s->oldest = seq;
    }
    give_back(s, e->slot);
}

uint32_t mw_store_clear(struct mw_store *s)
{
    uint32_t released = 0;
    if (s->count == 0)
        return 0;
    for (int64_t seq = s->oldest; seq <= s->newest; seq++) {
        struct mw_store_entry *e = entry(s, seq);
        if (e->used) {
            e->used = 0;
            give_back(s, e->slot);
            released++;
        }
    }
    s->count = 0;
    return released;
}

uint32_t mw_store_close(struct mw_store *s)
{
    s->closed = 1;
    return mw_store_clear(s);
}

/* ---- age ---------------------------------------------------------------------------------- */

static int too_old(const struct mw_store *s, int64_t timestamp, int64_t newest_timestamp)
{
    if (timestamp > newest_timestamp)
        return 0;
    return (uint64_t)(newest_timestamp - timestamp) >= s->age_ticks;
}

/* Evict the oldest while too old against newest_timestamp; whether any went. */
static int evict_too_old(struct mw_store *s, int64_t newest_timestamp)
{
    int removed = 0;
    while (s->count && too_old(s, entry(s, s->oldest)->timestamp, newest_timestamp)) {
        s->evicted_by_age++;
        remove_oldest(s);
        removed = 1;
    }
    return removed;
}

/* ---- insertion ---------------------------------------------------------------------------- */

/* What is inserted, already unwrapped. */
struct item {
    int64_t seq;
    int64_t timestamp;
    uint32_t slot;
    uint32_t length;
    uint32_t ssrc;
};

static void place(struct mw_store *s, const struct item *item)
{
    struct mw_store_entry *e = entry(s, item->seq);
    e->seq = item->seq;
    e->timestamp = item->timestamp;
    e->resent_at_ms = 0;
    e->serial = ++s->next_serial;
    e->slot = item->slot;
    e->length = item->length;
    e->ssrc = item->ssrc;
    e->sent_times = 0;
    e->used = 1;
    s->count++;
}

static void take_as_reference(struct mw_store *s, const struct item *item)
{
    s->ref_seq = item->seq;
    s->ref_ts = item->timestamp;
    s->has_ref = 1;
}

static int store_only(struct mw_store *s, const struct item *item)
{
    place(s, item);
    s->oldest = s->newest = item->seq;
    take_as_reference(s, item);
    return 1;
}

static int discard(struct mw_store *s)
{
    s->discarded++;
    return 0;
}

static int64_t span(const struct mw_store *s)
{
    return s->count ? s->newest - s->oldest + 1 : 0;
}

static int insert_newest(struct mw_store *s, const struct item *item)
{
    if (item->timestamp < entry(s, s->newest)->timestamp)
        return discard(s);
    int64_t span_after = item->seq - s->oldest + 1;
    if (span_after > s->max_items) {
        int64_t excess = span_after - s->max_items;
        if (excess > span(s) - 1) { /* even the newest would have to go */
            s->evicted_by_count += s->count;
            mw_store_clear(s);
            return store_only(s, item);
        }
        int64_t target_span = span(s) - excess;
        while (span(s) > target_span) {
            s->evicted_by_count++;
            remove_oldest(s);
        }
    }
    place(s, item);
    s->newest = item->seq;
    take_as_reference(s, item);
    return 1;
}

static int insert_oldest(struct mw_store *s, const struct item *item)
{
    if (too_old(s, item->timestamp, entry(s, s->newest)->timestamp))
        return discard(s);
    if (item->timestamp > entry(s, s->oldest)->timestamp)
        return discard(s);
    if (s->newest - item->seq + 1 > s->max_items)
        return discard(s);
    place(s, item);
    s->oldest = item->seq;
    return 1;
}

static int insert_between(struct mw_store *s, const struct item *item)
{
    if (entry(s, item->seq)->used)
        return discard(s); /* duplicate */
    /* The oldest and the newest are used, so both walks stop inside [oldest, newest]. */
    for (int64_t seq = item->seq - 1; seq >= s->oldest; seq--) {
        const struct mw_store_entry *older = entry(s, seq);
        if (older->used) {
            if (item->timestamp < older->timestamp)
                return discard(s);
            break;
        }
    }
    for (int64_t seq = item->seq + 1; seq <= s->newest; seq++) {
        const struct mw_store_entry *newer = entry(s, seq);
        if (newer->used) {
            if (item->timestamp > newer->timestamp)
                return discard(s);
            break;
        }
    }
    place(s, item);
    return 1;
}

int mw_store_insert(struct mw_store *s, uint16_t seq, uint32_t timestamp, uint32_t slot,
                    uint32_t length, uint32_t ssrc)
{
    if (s->closed || s->entries == NULL)
        return 0;
    struct item item = {extend_seq(s, seq), extend_ts(s, timestamp), slot, length, ssrc};
    if (s->count == 0)
        return store_only(s, &item);
    int64_t newest_ts = entry(s, s->newest)->timestamp;
    if (item.seq < s->newest && item.timestamp > newest_ts) {
        mw_store_clear(s); /* the sender restarted: what we hold is useless now */
        return store_only(s, &item);
    }
    int64_t age_reference = item.timestamp > newest_ts ? item.timestamp : newest_ts;
    if (evict_too_old(s, age_reference) && s->count == 0)
        return store_only(s, &item);
    if (item.seq > s->newest)
        return insert_newest(s, &item);
    if (item.seq < s->oldest)
        return insert_oldest(s, &item);
    return insert_between(s, &item);
}

/* ---- lookup ------------------------------------------------------------------------------- */

struct mw_store_entry *mw_store_get(struct mw_store *s, uint16_t seq)
{
    if (s->count == 0)
        return NULL;
    return mw_store_at(s, unwrap(seq, s->newest, SEQ_SPACE));
}

struct mw_store_entry *mw_store_resend(struct mw_store *s, uint16_t seq, int64_t now,
                                       int64_t rtt_ms)
{
    struct mw_store_entry *e = mw_store_get(s, seq);
    if (e == NULL)
        return NULL;
    /* now - resent_at_ms <= rtt_ms, without a signed overflow for far-apart clocks. */
    if (e->sent_times &&
        (now <= e->resent_at_ms ||
         (uint64_t)now - (uint64_t)e->resent_at_ms <= (uint64_t)(rtt_ms < 0 ? 0 : rtt_ms)))
        return NULL;
    e->resent_at_ms = now;
    e->sent_times++;
    return e;
}
