/* mediaworker hot path: the SFU fan-out of one received batch (see forward.h).
 *
 * Three steps: check the arguments (nothing is touched when one is bad), then walk the input
 * packets; for each, find its producer stream and, when enough output slots are left for all
 * of the stream's active consumers, make one output per consumer: copy, rewrite the fixed
 * header in place (the packet was parsed, so bytes 1-11 are there), remap extension ids, put
 * the egress extensions (MID, abs-send-time, transport-wide sequence number), protect. The send
 * step (mw_forward_send) groups a run's outputs by socket, one mw_sockio_send_batch each. No
 * function allocates. */
#include "forward.h"

#include "rtp.h"

#include <string.h>

struct fan_state {
    const struct mw_forward_table *table;
    const struct mw_forward_output *out;
    struct mw_forward_result *result;
};

static int input_ok(const struct mw_forward_input *in)
{
    return in->slab != NULL && in->slots != NULL && in->lengths != NULL && in->slot_size > 0 &&
           in->slot_size <= in->slab_len;
}

static int table_ok(const struct mw_forward_table *t)
{
    if ((t->ssrc_count && (t->ssrcs == NULL || t->streams == NULL)) ||
        (t->stream_count && (t->first == NULL || t->count == NULL)) ||
        (t->consumer_count && t->consumers == NULL) ||
        (t->ext_map_count && t->ext_maps == NULL) || (t->dest_count && t->dests == NULL))
        return 0;
    if (t->api != NULL && t->api->protect == NULL)
        return 0;
    for (uint32_t i = 0; i < t->consumer_count; i++) {
        const struct mw_forward_consumer *c = &t->consumers[i];
        if ((c->srtp != NULL && t->api == NULL) || (c->twcc_ext_id != 0 && c->twcc_seq == NULL) ||
            (c->mid_ext_id != 0 && (c->mid_len == 0 || c->mid_len > MW_FORWARD_MID_MAX_BYTES)))
            return 0;
    }
    return 1;
}

static int output_ok(const struct mw_forward_output *o)
{
    if (o->slab == NULL || o->free_slots == NULL || o->offsets == NULL || o->lengths == NULL ||
        o->slot_size < MW_RTP_FIXED_HEADER_BYTES || o->slot_size > MW_SRTP_MAX_CAPACITY ||
        o->slot_size % MW_SRTP_ALIGNMENT != 0 || (uintptr_t)o->slab % MW_SRTP_ALIGNMENT != 0)
        return 0;
    size_t slots = o->slab_len / o->slot_size;
    for (uint32_t k = 0; k < o->free_count; k++)
        if (o->free_slots[k] >= slots)
            return 0;
    return 1;
}

/* Index of the producer stream of `ssrc`, or -1. */
static int64_t find_stream(const struct mw_forward_table *t, uint32_t ssrc)
{
    uint32_t lo = 0, hi = t->ssrc_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t v = t->ssrcs[mid];
        if (v == ssrc)
            return t->streams[mid];
        if (v < ssrc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

/* The value of the element `id` of the packet parsed in *h when it is `length` bytes long. */
static uint8_t *ext_value(uint8_t *buf, const struct mw_rtp_header *h, unsigned int id,
                          size_t length)
{
    int i = mw_rtp_ext_find(h, id);
    if (i < 0 || h->ext[i].length != length)
        return NULL;
    return buf + h->ext[i].offset;
}

static int entry_ok(const struct mw_forward_table *t, const struct mw_forward_consumer *c)
{
    return (!c->remap_ext || c->ext_map < t->ext_map_count) && c->dest < t->dest_count;
}

static void fail(struct mw_forward_consumer *c, int32_t error, uint32_t *counter)
{
    c->failures++;
    c->last_error = error;
    (*counter)++;
}

/* Make consumer c's copy of the packet in the next free slot; records it on success. */
static void fan_one(struct fan_state *st, struct mw_forward_consumer *c, const uint8_t *packet,
                    uint32_t len, const struct mw_rtp_header *h)
{
    const struct mw_forward_output *out = st->out;
    struct mw_forward_result *r = st->result;
    uint8_t pt = c->pt_map[h->payload_type];
    if (pt > 127) {
        c->dropped_pt++;
        r->dropped_pt++;
        return;
    }
    size_t room = c->srtp != NULL ? MW_SRTP_RTP_TRAILER_MAX : 0;
    size_t cap = out->slot_size - room;
    if (out->slot_size < room || len > cap) {
        fail(c, MW_RTP_ERR_NO_ROOM, &r->too_big);
        return;
    }
    uint32_t k = r->outputs;
    size_t offset = (size_t)out->free_slots[k] * out->slot_size;
    uint8_t *buf = out->slab + offset;
    memcpy(buf, packet, len);
    uint16_t seq = (uint16_t)(h->sequence_number + c->seq_offset);
    uint32_t ts = h->timestamp + c->ts_offset;
    buf[1] = (uint8_t)((packet[1] & 0x80) | pt);
    put_be16(buf + 2, seq);
    put_be32(buf + 4, ts);
    put_be32(buf + 8, c->ssrc);
    int n = (int)len;
    struct mw_rtp_header rewritten;
    const struct mw_rtp_header *oh = h; /* the copy's layout is the input's until a rebuild */
    if (c->remap_ext && h->ext_form != MW_RTP_EXT_NONE) {
        const uint8_t *map = st->table->ext_maps + (size_t)c->ext_map * MW_FORWARD_EXT_MAP_BYTES;
        n = mw_rtp_ext_remap(buf, len, cap, map, &rewritten);
        if (n < 0) {
            fail(c, n, &r->rewrite_failed);
            return;
        }
        oh = &rewritten;
    }
    if (c->mid_ext_id != 0) {
        n = mw_rtp_ext_put(buf, (size_t)n, cap, c->mid_ext_id, c->mid, c->mid_len, &rewritten);
        if (n < 0) {
            fail(c, n, &r->rewrite_failed);
            return;
        }
        oh = &rewritten;
    }
    uint8_t *abs_time = c->abs_send_time_ext_id == 0 ? NULL
                        : ext_value(buf, oh, c->abs_send_time_ext_id,
                                    MW_FORWARD_ABS_SEND_TIME_BYTES);
    if (abs_time != NULL)
        put_be24(abs_time, st->table->abs_send_time);
    uint8_t *twcc = c->twcc_ext_id == 0 ? NULL
                    : ext_value(buf, oh, c->twcc_ext_id, MW_FORWARD_TWCC_BYTES);
    uint16_t twcc_seq = twcc == NULL ? 0 : (uint16_t)(*c->twcc_seq + 1u);
    if (twcc != NULL)
        put_be16(twcc, twcc_seq);
    uint32_t plain_len = (uint32_t)n;
    if (c->srtp != NULL) {
        int status = st->table->api->protect(c->srtp, buf, &n);
        if (status != 0) {
            fail(c, status, &r->srtp_failed);
            return;
        }
        if (n < 0 || (size_t)n > out->slot_size) {
            fail(c, MW_SRTP_STATUS_BAD_RESULT, &r->srtp_failed);
            return;
        }
    }
    out->offsets[k] = offset;
    out->lengths[k] = (uint32_t)n;
    if (out->addrs != NULL)
        out->addrs[k] = st->table->dests[c->dest];
    if (out->dest_index != NULL)
        out->dest_index[k] = c->dest;
    if (twcc != NULL)
        *c->twcc_seq = twcc_seq; /* the number is used only by a recorded output */
    r->outputs++;
    r->forwarded++;
    c->last_seq = seq;
    c->last_ts = ts;
    c->sent_any = 1;
    c->packets++;
    c->bytes += plain_len;
}

/* The consumers of a stream that will want a slot (not paused, entry valid). */
static uint32_t active_consumers(const struct mw_forward_table *t, uint32_t first, uint32_t count)
{
    uint32_t active = 0;
    for (uint32_t j = first; j < first + count; j++)
        if (!t->consumers[j].paused)
            active++;
    return active;
}

int mw_forward_batch(const struct mw_forward_input *in, struct mw_forward_table *table,
                     const struct mw_forward_output *out, struct mw_forward_result *result)
{
    if (result == NULL)
        return MW_FORWARD_ERR_ARGS;
    memset(result, 0, sizeof(*result));
    if (in == NULL || table == NULL || out == NULL || !input_ok(in) || !table_ok(table) ||
        !output_ok(out))
        return MW_FORWARD_ERR_ARGS;
    struct fan_state st = {table, out, result};
    uint32_t limit = out->free_count < out->capacity ? out->free_count : out->capacity;
    uint32_t i = 0;
    for (; i < in->count; i++) {
        size_t slot_start = (size_t)in->slots[i] * in->slot_size;
        uint32_t len = in->lengths[i];
        struct mw_rtp_header h;
        if (in->slots[i] >= in->slab_len / in->slot_size || len > in->slot_size ||
            mw_rtp_parse(in->slab + slot_start, len, &h) != MW_RTP_OK) {
            result->malformed++;
            continue;
        }
        int64_t s = find_stream(table, h.ssrc);
        if (s < 0 || (uint64_t)s >= table->stream_count) {
            result->unknown_ssrc++;
            continue;
        }
        uint32_t first = table->first[s], count = table->count[s];
        if (first > table->consumer_count || count > table->consumer_count - first) {
            result->table_errors++;
            result->handled++;
            continue;
        }
        if (active_consumers(table, first, count) > limit - result->outputs)
            break;
        result->handled++;
        for (uint32_t j = first; j < first + count; j++) {
            struct mw_forward_consumer *c = &table->consumers[j];
            if (c->paused) {
                result->paused++;
            } else if (!entry_ok(table, c)) {
                result->table_errors++;
            } else {
                fan_one(&st, c, in->slab + slot_start, len, &h);
            }
        }
    }
    result->stopped_at = i;
    result->out_of_slots = in->count - i;
    return MW_FORWARD_OK;
}

/* ---- sending a run's outputs ------------------------------------------------------------- */

static int send_args_ok(const struct mw_forward_table *t, const struct mw_forward_output *o,
                        uint32_t n, const struct mw_forward_send_area *a)
{
    if (t == NULL || o == NULL || a == NULL || o->slab == NULL || o->offsets == NULL ||
        o->lengths == NULL || o->dest_index == NULL || a->offsets == NULL ||
        a->lengths == NULL || a->addrs == NULL || a->pending == NULL || a->deferred == NULL ||
        n > o->capacity || n > a->capacity || n > INT32_MAX ||
        (t->dest_count && (t->dests == NULL || t->dest_fds == NULL)))
        return 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t d = o->dest_index[k];
        if (d >= t->dest_count || o->offsets[k] > o->slab_len ||
            o->lengths[k] > o->slab_len - o->offsets[k])
            return 0;
        uint16_t family = t->dests[d].family;
        if (t->dest_fds[d] >= 0 && family != MW_SOCKIO_FAMILY_IPV4 &&
            family != MW_SOCKIO_FAMILY_IPV6)
            return 0;
    }
    return 1;
}

/* Gather the pending outputs of socket `fd` into the area's send arrays, keep the others (in
 * order) at the front of area->pending; returns how many were gathered. */
static uint32_t gather(const struct mw_forward_table *t, const struct mw_forward_output *o,
                       const struct mw_forward_send_area *a, int32_t fd, uint32_t *pending)
{
    uint32_t m = 0, kept = 0;
    for (uint32_t i = 0; i < *pending; i++) {
        uint32_t k = a->pending[i];
        uint32_t d = o->dest_index[k];
        if (t->dest_fds[d] == fd) {
            a->offsets[m] = o->offsets[k];
            a->lengths[m] = o->lengths[k];
            a->addrs[m] = t->dests[d];
            m++;
        } else {
            a->pending[kept++] = k;
        }
    }
    *pending = kept;
    return m;
}

int mw_forward_send(const struct mw_forward_table *table, const struct mw_forward_output *out,
                    uint32_t n, const struct mw_forward_send_area *area,
                    struct mw_forward_send_result *result)
{
    if (result == NULL)
        return MW_FORWARD_ERR_ARGS;
    memset(result, 0, sizeof(*result));
    if (!send_args_ok(table, out, n, area))
        return MW_FORWARD_ERR_ARGS;
    uint32_t pending = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (table->dest_fds[out->dest_index[k]] < 0)
            area->deferred[result->deferred++] = k;
        else
            area->pending[pending++] = k;
    }
    while (pending > 0) {
        int32_t fd = table->dest_fds[out->dest_index[area->pending[0]]];
        uint32_t m = gather(table, out, area, fd, &pending);
        struct mw_sockio_send_result sent;
        mw_sockio_send_batch(fd, out->slab, out->slab_len, area->offsets, area->lengths,
                             area->addrs, m, &sent);
        result->sockets++;
        result->sent += sent.sent;
        result->dropped += sent.dropped;
        result->left += sent.left;
        if (sent.err != 0)
            result->err = sent.err;
        if (sent.drop_err != 0)
            result->drop_err = sent.drop_err;
    }
    return MW_FORWARD_OK;
}
