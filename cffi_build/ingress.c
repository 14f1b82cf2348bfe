/* mediaworker hot path: one socket's receive path per wake-up (see ingress.h).
 *
 * Three steps: receive a batch into receive-pool slots; walk it, taking each datagram that
 * needs no decision (and stopping at the first one that does); fan the taken packets out and
 * send them, in as many rounds as the output pool allows. */
#define _GNU_SOURCE
#include "ingress.h"

#include "fast.h"
#include "keyframe.h"
#include "rtp.h"

#include <errno.h>
#include <string.h>
#include <time.h>

uint32_t mw_ingress_abs_send_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* 6.18 fixed point of the seconds: the low 6 bits of the seconds, 18 bits of fraction. */
    uint64_t fraction = ((uint64_t)ts.tv_nsec << 18) / 1000000000u;
    return (uint32_t)((((uint64_t)ts.tv_sec << 18) + fraction) & 0xFFFFFFu);
}

static int args_ok(const struct mw_ingress *g)
{
    return g->in_pool != NULL && g->out_pool != NULL && g->slots != NULL &&
           g->lengths != NULL && g->addrs != NULL && g->flags != NULL && g->kinds != NULL &&
           (g->route_count == 0 || g->routes != NULL) && g->touched != NULL && g->lent == 0;
}

static int route_ok(const struct mw_ingress_route *r)
{
    return r != NULL && (r->stream_count == 0 || r->streams != NULL) && r->table != NULL &&
           r->fwd_in != NULL && r->fwd_out != NULL && r->free_slots != NULL &&
           r->area != NULL && r->fwd_result != NULL && r->send_result != NULL &&
           r->queue_slots != NULL && r->queue_lengths != NULL && (!r->srtp || r->api != NULL);
}

int mw_ingress_addr_cmp(const struct mw_sockio_addr *a, const struct mw_sockio_addr *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    if (a->port != b->port)
        return a->port < b->port ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof a->addr);
}

/* The route of source `addr` (binary search in the sorted routes), or NULL. */
static struct mw_ingress_route *find_route(const struct mw_ingress *g,
                                           const struct mw_sockio_addr *addr)
{
    uint32_t lo = 0, hi = g->route_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = mw_ingress_addr_cmp(addr, &g->routes[mid]->remote);
        if (c == 0)
            return g->routes[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static struct mw_ingress_stream *find_stream(struct mw_ingress_route *r, uint32_t ssrc)
{
    for (uint32_t s = 0; s < r->stream_count; s++)
        if (r->streams[s].ssrc == ssrc)
            return &r->streams[s];
    return NULL;
}

enum take_result { TAKEN = 0, DROPPED = 1, SLOW = 2 };

/* The stream's checks that leave a packet to Python; nothing is changed before they pass. */
static int needs_python(const struct mw_ingress_stream *s, const uint8_t *buf,
                        const struct mw_rtp_header *h, int64_t now_ms)
{
    if (!s->enabled || !s->pt_ok[h->payload_type & 0x7F] || h->payload_length == 0)
        return 1;
    if (s->nack != NULL) {
        const struct mw_nack_state *n = s->nack;
        if (!n->has_last || (uint16_t)(h->sequence_number - (uint16_t)n->last_seq) != 1)
            return 1;
        /* Packets are missing: fine, unless the generator has a request to make now or an
         * entry to forget (see struct mw_nack_state). */
        if (n->pending != 0 &&
            (now_ms >= n->next_ask_ms ||
             n->oldest < n->last_seq + 1 - MW_INGRESS_NACK_MAX_PACKET_AGE))
            return 1;
    }
    return s->keyframe_codec != 0 &&
           mw_keyframe(s->keyframe_codec, buf + h->payload_offset, h->payload_length);
}

static void store_copy(struct mw_ingress *g, struct mw_ingress_route *r,
                       struct mw_ingress_stream *s, const uint8_t *buf, uint32_t len,
                       const struct mw_rtp_header *h)
{
    struct mw_pool *pool = g->out_pool;
    if (len > pool->slot_size) {
        r->store_no_buffer++;
        return;
    }
    int64_t slot = mw_pool_acquire(pool);
    if (slot < 0) {
        r->store_no_buffer++;
        return;
    }
    memcpy(pool->slab + (size_t)slot * pool->slot_size, buf, len);
    if (!mw_store_insert(s->store, h->sequence_number, h->timestamp, (uint32_t)slot, len,
                         h->ssrc))
        mw_pool_release(pool, (uint32_t)slot);
}

static void queue(struct mw_ingress *g, struct mw_ingress_route *r, uint32_t slot, uint32_t len)
{
    if (r->queued == 0)
        g->touched[g->touched_count++] = r; /* at most one per datagram of the batch */
    r->queue_slots[r->queued] = slot;
    r->queue_lengths[r->queued] = len;
    r->queued++;
}

/* Datagram i: taken (queued or consumed), dropped (counted), or left to Python. */
static int take(struct mw_ingress *g, uint32_t i, int64_t now_ms)
{
    if (g->flags[i] != 0 || g->kinds[i] != MW_KIND_RTP)
        return SLOW;
    struct mw_ingress_route *r = find_route(g, &g->addrs[i]);
    if (r == NULL)
        return SLOW;
    struct mw_pool *in = g->in_pool;
    uint8_t *buf = in->slab + (size_t)g->slots[i] * in->slot_size;
    uint32_t len = g->lengths[i];
    uint32_t received_len = len;
    if (r->srtp) {
        if (r->srtp_in == NULL)
            return SLOW;
        int n = (int)len;
        int status = r->api->unprotect(r->srtp_in, buf, &n);
        if (status != 0 || n < 0 || (uint32_t)n > len) {
            r->datagrams++;
            r->bytes += received_len;
            r->srtp_failed++;
            return DROPPED;
        }
        len = (uint32_t)n;
        g->lengths[i] = len;
        g->flags[i] = MW_INGRESS_UNPROTECTED; /* from here on, Python must not unprotect */
    }
    struct mw_rtp_header h;
    if (mw_rtp_parse(buf, len, &h) != MW_RTP_OK)
        return SLOW;
    struct mw_ingress_stream *s = find_stream(r, h.ssrc);
    if (s == NULL || needs_python(s, buf, &h, now_ms))
        return SLOW;
    g->flags[i] = 0;
    r->datagrams++;
    r->bytes += received_len;
    r->rtp_received++;
    r->rtp_bytes += len;
    if (!mw_recv_stream_receive(s->stats, h.sequence_number, h.timestamp, len,
                                h.payload_length, now_ms))
        return DROPPED; /* an invalid sequence number: counted by the stream */
    if (s->nack != NULL)
        s->nack->last_seq++;
    s->packets++;
    if (s->store != NULL)
        store_copy(g, r, s, buf, len, &h);
    if (s->forward)
        queue(g, r, g->slots[i], len);
    return TAKEN;
}

/* Fan a route's queue out and send it, in rounds of as many output slots as the pool lends. */
static void fan_out(struct mw_ingress *g, struct mw_ingress_route *r)
{
    struct mw_forward_table *t = r->table;
    uint32_t queued = r->queued;
    r->queued = 0;
    if (queued == 0 || t->consumer_count == 0)
        return;
    t->abs_send_time = mw_ingress_abs_send_time();
    struct mw_forward_input *in = r->fwd_in;
    struct mw_forward_output *out = r->fwd_out;
    struct mw_forward_result *res = r->fwd_result;
    struct mw_forward_send_result *sr = r->send_result;
    uint32_t start = 0;
    while (start < queued) {
        uint64_t want = (uint64_t)(queued - start) * t->consumer_count;
        if (want > out->capacity)
            want = out->capacity;
        uint32_t got = mw_pool_acquire_many(g->out_pool, r->free_slots, (uint32_t)want);
        if (got == 0) {
            r->out_of_slots += queued - start;
            return;
        }
        in->slots = r->queue_slots + start;
        in->lengths = r->queue_lengths + start;
        in->count = queued - start;
        out->free_slots = r->free_slots;
        out->free_count = got;
        uint32_t handled = 0;
        if (mw_forward_batch(in, t, out, res) == MW_FORWARD_OK) {
            r->forwarded += res->outputs;
            handled = res->stopped_at;
            if (res->outputs != 0 &&
                mw_forward_send(t, out, res->outputs, r->area, sr) == MW_FORWARD_OK)
                r->send_dropped += sr->dropped + sr->left + sr->deferred;
        }
        mw_pool_release_many(g->out_pool, r->free_slots, got);
        if (handled == 0) {
            r->out_of_slots += queued - start;
            return;
        }
        start += handled;
    }
}

/* Take datagrams from `from` on until one needs Python (or the batch ends), then fan out and
 * send what each route queued. Returns the index of the one that needs Python (received:
 * none). */
static uint32_t walk(struct mw_ingress *g, uint32_t from, int64_t now_ms)
{
    uint32_t i = from;
    g->touched_count = 0;
    for (; i < g->received; i++)
        if (take(g, i, now_ms) == SLOW)
            break;
    for (uint32_t k = 0; k < g->touched_count; k++)
        fan_out(g, g->touched[k]);
    g->touched_count = 0;
    return i;
}

static void adapt_want(struct mw_ingress *g, uint32_t asked, uint32_t received)
{
    uint32_t want = received == asked ? asked * 4 : 2 * received;
    if (want < MW_INGRESS_MIN_WANT)
        want = MW_INGRESS_MIN_WANT;
    g->want = want > MW_INGRESS_BATCH ? MW_INGRESS_BATCH : want;
}

int mw_ingress_run(struct mw_ingress *g, int64_t now_ms, struct mw_ingress_result *result)
{
    memset(result, 0, sizeof *result);
    if (g == NULL || !args_ok(g))
        return -1;
    for (uint32_t k = 0; k < g->route_count; k++)
        if (!route_ok(g->routes[k]))
            return -1;
    g->runs++;
    uint32_t asked = g->want;
    if (asked < MW_INGRESS_MIN_WANT || asked > MW_INGRESS_BATCH)
        asked = MW_INGRESS_MIN_WANT;
    uint32_t got = mw_pool_acquire_many(g->in_pool, g->slots, asked);
    if (got == 0) {
        g->no_recv_slots++;
        result->err = ENOBUFS;
        return 0;
    }
    struct mw_pool *in = g->in_pool;
    int err = 0;
    int n = mw_sockio_recv_batch(g->fd, in->slab, (size_t)in->capacity * in->slot_size,
                                 in->slot_size, g->slots, got, g->lengths, g->addrs, g->flags,
                                 &err);
    uint32_t received = n > 0 ? (uint32_t)n : 0;
    result->err = err;
    result->received = received;
    result->asked = got;
    adapt_want(g, got, received);
    mw_classify_slots(in->slab, (size_t)in->capacity * in->slot_size, in->slot_size, g->slots,
                      g->lengths, received, g->kinds);
    g->received = received;
    uint32_t i = walk(g, 0, now_ms);
    result->slow_from = i;
    if (i < received) {
        /* Python handles datagram i next; the batch goes back as one, at the end. */
        g->lent = got;
        return 0;
    }
    mw_pool_release_many(in, g->slots, got);
    return 0;
}

int mw_ingress_resume(struct mw_ingress *g, uint32_t from, int64_t now_ms,
                      struct mw_ingress_result *result)
{
    if (g == NULL || g->lent == 0 || from > g->received)
        return -1;
    result->received = g->received;
    result->asked = g->lent;
    result->err = 0;
    result->slow_from = walk(g, from, now_ms);
    return 0;
}

void mw_ingress_release(struct mw_ingress *g)
{
    if (g == NULL || g->lent == 0)
        return;
    mw_pool_release_many(g->in_pool, g->slots, g->lent);
    g->lent = 0;
}
