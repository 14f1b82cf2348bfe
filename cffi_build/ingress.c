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
           (g->stream_count == 0 || g->streams != NULL) && g->table != NULL &&
           g->fwd_in != NULL && g->fwd_out != NULL && g->free_slots != NULL &&
           g->area != NULL && g->fwd_result != NULL && g->send_result != NULL &&
           g->queue_slots != NULL && g->queue_lengths != NULL && g->lent == 0 &&
           (!g->srtp || g->api != NULL);
}

static int same_addr(const struct mw_sockio_addr *a, const struct mw_sockio_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static struct mw_ingress_stream *find_stream(struct mw_ingress *g, uint32_t ssrc)
{
    for (uint32_t s = 0; s < g->stream_count; s++)
        if (g->streams[s].ssrc == ssrc)
            return &g->streams[s];
    return NULL;
}

enum take_result { TAKEN = 0, DROPPED = 1, SLOW = 2 };

/* The stream's checks that leave a packet to Python; nothing is changed before they pass. */
static int needs_python(const struct mw_ingress_stream *s, const uint8_t *buf,
                        const struct mw_rtp_header *h)
{
    if (!s->enabled || !s->pt_ok[h->payload_type & 0x7F] || h->payload_length == 0)
        return 1;
    if (s->nack != NULL) {
        const struct mw_nack_state *n = s->nack;
        if (!n->has_last || n->pending != 0 ||
            (uint16_t)(h->sequence_number - (uint16_t)n->last_seq) != 1)
            return 1;
    }
    return s->keyframe_codec != 0 &&
           mw_keyframe(s->keyframe_codec, buf + h->payload_offset, h->payload_length);
}

static void store_copy(struct mw_ingress *g, struct mw_ingress_stream *s, const uint8_t *buf,
                       uint32_t len, const struct mw_rtp_header *h)
{
    struct mw_pool *pool = g->out_pool;
    if (len > pool->slot_size) {
        g->store_no_buffer++;
        return;
    }
    int64_t slot = mw_pool_acquire(pool);
    if (slot < 0) {
        g->store_no_buffer++;
        return;
    }
    memcpy(pool->slab + (size_t)slot * pool->slot_size, buf, len);
    if (!mw_store_insert(s->store, h->sequence_number, h->timestamp, (uint32_t)slot, len,
                         h->ssrc))
        mw_pool_release(pool, (uint32_t)slot);
}

/* Datagram i: taken (queued or consumed), dropped (counted), or left to Python. */
static int take(struct mw_ingress *g, uint32_t i, int64_t now_ms, uint32_t *queued)
{
    if (g->flags[i] != 0 || g->kinds[i] != MW_KIND_RTP || !g->has_remote ||
        !same_addr(&g->addrs[i], &g->remote))
        return SLOW;
    struct mw_pool *in = g->in_pool;
    size_t offset = (size_t)g->slots[i] * in->slot_size;
    uint8_t *buf = in->slab + offset;
    uint32_t len = g->lengths[i];
    uint32_t received_len = len;
    if (g->srtp) {
        if (g->srtp_in == NULL)
            return SLOW;
        int n = (int)len;
        int status = g->api->unprotect(g->srtp_in, buf, &n);
        if (status != 0 || n < 0 || (uint32_t)n > len) {
            g->datagrams++;
            g->bytes += received_len;
            g->srtp_failed++;
            return DROPPED;
        }
        len = (uint32_t)n;
        g->lengths[i] = len;
        g->flags[i] = MW_INGRESS_UNPROTECTED; /* from here on, Python must not unprotect */
    }
    struct mw_rtp_header h;
    if (mw_rtp_parse(buf, len, &h) != MW_RTP_OK)
        return SLOW;
    struct mw_ingress_stream *s = find_stream(g, h.ssrc);
    if (s == NULL || needs_python(s, buf, &h))
        return SLOW;
    g->flags[i] = 0;
    g->datagrams++;
    g->bytes += received_len;
    g->rtp_received++;
    g->rtp_bytes += len;
    if (!mw_recv_stream_receive(s->stats, h.sequence_number, h.timestamp, len,
                                h.payload_length, now_ms))
        return DROPPED; /* an invalid sequence number: counted by the stream */
    if (s->nack != NULL)
        s->nack->last_seq++;
    s->packets++;
    if (s->store != NULL)
        store_copy(g, s, buf, len, &h);
    if (s->forward) {
        g->queue_slots[*queued] = g->slots[i];
        g->queue_lengths[*queued] = len;
        (*queued)++;
    }
    return TAKEN;
}

/* Fan the queue out and send it, in rounds of as many output slots as the pool lends. */
static void fan_out(struct mw_ingress *g, uint32_t queued)
{
    struct mw_forward_table *t = g->table;
    if (queued == 0 || t->consumer_count == 0)
        return;
    t->abs_send_time = mw_ingress_abs_send_time();
    struct mw_forward_input *in = g->fwd_in;
    struct mw_forward_output *out = g->fwd_out;
    struct mw_forward_result *r = g->fwd_result;
    struct mw_forward_send_result *sr = g->send_result;
    uint32_t start = 0;
    while (start < queued) {
        uint64_t want = (uint64_t)(queued - start) * t->consumer_count;
        if (want > out->capacity)
            want = out->capacity;
        uint32_t got = mw_pool_acquire_many(g->out_pool, g->free_slots, (uint32_t)want);
        if (got == 0) {
            g->out_of_slots += queued - start;
            return;
        }
        in->slots = g->queue_slots + start;
        in->lengths = g->queue_lengths + start;
        in->count = queued - start;
        out->free_slots = g->free_slots;
        out->free_count = got;
        uint32_t handled = 0;
        if (mw_forward_batch(in, t, out, r) == MW_FORWARD_OK) {
            g->forwarded += r->outputs;
            handled = r->stopped_at;
            if (r->outputs != 0 &&
                mw_forward_send(t, out, r->outputs, g->area, sr) == MW_FORWARD_OK)
                g->send_dropped += sr->dropped + sr->left + sr->deferred;
        }
        mw_pool_release_many(g->out_pool, g->free_slots, got);
        if (handled == 0) {
            g->out_of_slots += queued - start;
            return;
        }
        start += handled;
    }
}

/* Take datagrams from `from` on until one needs Python (or the batch ends), then fan out and
 * send what was taken. Returns the index of the one that needs Python (received: none). */
static uint32_t walk(struct mw_ingress *g, uint32_t from, int64_t now_ms)
{
    uint32_t queued = 0;
    uint32_t i = from;
    if (g->enabled) {
        for (; i < g->received; i++)
            if (take(g, i, now_ms, &queued) == SLOW)
                break;
    }
    fan_out(g, queued);
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
