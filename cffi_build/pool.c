/* mediaworker hot path: buffer-pool bookkeeping (see pool.h). */
#include "pool.h"

/* lent[] values. LENT_MARKED only exists inside mw_pool_release_many (to find a slot repeated
 * in the batch without allocating); every slot is back to LENT_YES or released on return. */
enum {
    LENT_NO = 0,
    LENT_YES = 1,
    LENT_MARKED = 2
};

int mw_pool_init(struct mw_pool *p, uint8_t *slab, size_t slot_size, uint32_t capacity,
                 uint32_t *free_stack, uint8_t *lent)
{
    if (p == NULL || free_stack == NULL || lent == NULL || capacity == 0 || slot_size == 0)
        return -1;
    p->slab = slab;
    p->slot_size = slot_size;
    p->capacity = capacity;
    p->free = free_stack;
    p->lent = lent;
    /* Lowest slots on top, so they are lent first. */
    for (uint32_t i = 0; i < capacity; i++) {
        free_stack[i] = capacity - 1 - i;
        lent[i] = LENT_NO;
    }
    p->free_count = capacity;
    p->high_water = 0;
    p->exhausted = 0;
    return 0;
}

uint32_t mw_pool_in_use(const struct mw_pool *p)
{
    return p->capacity - p->free_count;
}

static void note_in_use(struct mw_pool *p)
{
    uint32_t in_use = p->capacity - p->free_count;
    if (in_use > p->high_water)
        p->high_water = in_use;
}

int64_t mw_pool_acquire(struct mw_pool *p)
{
    if (p->free_count == 0) {
        p->exhausted++;
        return -1;
    }
    uint32_t slot = p->free[--p->free_count];
    p->lent[slot] = LENT_YES;
    note_in_use(p);
    return slot;
}

uint32_t mw_pool_acquire_many(struct mw_pool *p, uint32_t *out, uint32_t count)
{
    if (count == 0)
        return 0;
    uint32_t take = count < p->free_count ? count : p->free_count;
    if (take < count)
        p->exhausted++;
    if (take == 0)
        return 0;
    /* The top `take` entries, bottom first: what Python's free[-take:] gave. */
    const uint32_t *top = p->free + (p->free_count - take);
    for (uint32_t k = 0; k < take; k++) {
        out[k] = top[k];
        p->lent[top[k]] = LENT_YES;
    }
    p->free_count -= take;
    note_in_use(p);
    return take;
}

int mw_pool_release(struct mw_pool *p, uint32_t slot)
{
    /* free_count == capacity with a slot still marked lent means the struct is corrupt:
     * refuse rather than write past the stack. */
    if (slot >= p->capacity || p->lent[slot] == LENT_NO || p->free_count >= p->capacity)
        return -1;
    p->lent[slot] = LENT_NO;
    p->free[p->free_count++] = slot;
    return 0;
}

/* Put back the marks of slots[0 .. n) (all LENT_MARKED) after a refused batch. */
static void unmark(struct mw_pool *p, const uint32_t *slots, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        p->lent[slots[i]] = LENT_YES;
}

int mw_pool_release_many(struct mw_pool *p, const uint32_t *slots, uint32_t n)
{
    if (n == 0)
        return 0;
    if (n > p->capacity - p->free_count)
        return -1; /* more than are lent: some slot is not lent, or repeated */
    /* Check everything first, marking each slot so that a repeat shows: a misuse changes
     * nothing. */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t slot = slots[i];
        if (slot >= p->capacity || p->lent[slot] != LENT_YES) {
            unmark(p, slots, i);
            return -1;
        }
        p->lent[slot] = LENT_MARKED;
    }
    for (uint32_t i = 0; i < n; i++) {
        p->lent[slots[i]] = LENT_NO;
        p->free[p->free_count++] = slots[i];
    }
    return 0;
}
