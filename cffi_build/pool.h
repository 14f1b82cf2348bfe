/* mediaworker hot path: the bookkeeping of a fixed-size buffer pool (worker/bufferpool.py).
 *
 * A pool is one slab of capacity * slot_size bytes (the Python side's anonymous mmap) lent out
 * slot by slot; a slot is named by its index. The pool's state is this struct, so that C code
 * (one receive call per socket wake-up, the retransmission store's evictions) can take and give
 * back slots with no Python involved, and BufferPool in Python is a thin wrapper reading it.
 *
 * Free slots are a stack: free[0 .. free_count), the top is free[free_count - 1]. A fresh pool
 * has free[i] = capacity - 1 - i, so the lowest slots are lent first (a lightly used pool
 * touches few pages of its slab). mw_pool_acquire pops the top; mw_pool_acquire_many lends the
 * top `take` entries in the order they sit in the stack (out[k] = free[free_count - take + k]);
 * a release pushes on top. The Python pool gave slots in exactly this order, and tests rely
 * on it.
 *
 * Misuse (a slot released twice, one never lent, one out of range, one repeated in a batch) is a
 * bug in the caller: the call returns -1 and changes nothing, so the stack is never corrupted.
 *
 * Memory: the struct and its three arrays belong to the caller (BufferPool allocates them with
 * ffi.new and keeps them alive as long as the pool): free and lent have capacity entries. The
 * functions read and write only the struct and free[0 .. capacity), lent[0 .. capacity); they
 * never touch the slab (slab is here for the C callers that address slot i at
 * slab + i * slot_size). Never allocates. Not thread-safe: one pool, one thread at a time. */
#ifndef MW_POOL_H
#define MW_POOL_H

#include <stddef.h>
#include <stdint.h>

struct mw_pool {
    uint8_t *slab;        /* capacity * slot_size bytes (the Python mmap) */
    size_t slot_size;
    uint32_t capacity;
    uint32_t *free;       /* stack of free slots: free[0 .. free_count); the top is
                             free[free_count - 1] */
    uint32_t free_count;
    uint8_t *lent;        /* lent[slot] != 0 while the slot is lent */
    uint32_t high_water;  /* most slots lent at once */
    uint64_t exhausted;   /* acquires that found the pool empty (a short acquire_many counts one) */
};

/* Set up a fresh pool over caller-provided memory: every slot free (p->free = free_stack, with
 * free_stack[i] = capacity - 1 - i; lent[] zeroed), counters zeroed. free_stack and lent must
 * have capacity entries. Returns 0, or -1 (nothing written) when p or an array is NULL or
 * capacity or slot_size is 0. */
int mw_pool_init(struct mw_pool *p, uint8_t *slab, size_t slot_size, uint32_t capacity,
                 uint32_t *free_stack, uint8_t *lent);

/* Slots lent right now: capacity - free_count. */
uint32_t mw_pool_in_use(const struct mw_pool *p);

/* Lend the top free slot: its index, or -1 when every slot is lent (counted in exhausted). */
int64_t mw_pool_acquire(struct mw_pool *p);

/* Lend up to count slots at once, written to out[0 .. returned) in stack order (see the top of
 * this file). Fewer when the pool runs short: the shortfall counts one exhausted (also when
 * nothing is left). count 0 returns 0 and counts nothing. out must have room for
 * min(count, free_count) entries. */
uint32_t mw_pool_acquire_many(struct mw_pool *p, uint32_t *out, uint32_t count);

/* Give a lent slot back (pushed on top of the stack). Returns 0, or -1 when the slot is out of
 * range or not lent; then nothing changed. */
int mw_pool_release(struct mw_pool *p, uint32_t slot);

/* Give n lent slots back, pushed in order (slots[n - 1] ends on top). Returns 0, or -1 when any
 * slot is out of range, not lent, or repeated in the batch; then nothing changed. n 0 is 0. */
int mw_pool_release_many(struct mw_pool *p, const uint32_t *slots, uint32_t n);

#endif
