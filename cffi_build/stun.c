/* mediaworker hot path: STUN message parse and binding response build (RFC 5389/8489, ICE attributes of RFC 8445).
 *
 * The parser takes untrusted bytes from the network: every read is preceded by a length check and
 * malformed input is reported by a mw_stun_reason, never by a crash. HMAC-SHA1 is left to the
 * caller (Python's hashlib), so the builders work in two steps; FINGERPRINT (CRC-32) is done here. */
#include <string.h>

#include "stun.h"

static const uint32_t MAGIC_COOKIE = 0x2112A442u;
static const uint32_t FINGERPRINT_XOR = 0x5354554Eu;
static const size_t ATTR_HEADER_BYTES = 4;
static const size_t INTEGRITY_ATTR_BYTES = 24;   /* header + HMAC-SHA1 */
static const size_t FINGERPRINT_ATTR_BYTES = 8;  /* header + CRC-32 */
static const size_t MAX_MESSAGE_BYTES = 20 + 0xFFFF;

/* CRC-32 (reflected polynomial 0xEDB88320), "slicing by 8": CRC32_TABLE[0] is the classic
 * byte-at-a-time table and CRC32_TABLE[k][n] is the CRC of byte n followed by k zero bytes, so one
 * step folds 8 input bytes with independent look-ups instead of a chain of 8. The tables are
 * filled once when the library is loaded. */
static uint32_t CRC32_TABLE[8][256];

__attribute__((constructor)) static void crc32_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        CRC32_TABLE[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++) {
            uint32_t prev = CRC32_TABLE[k - 1][n];
            CRC32_TABLE[k][n] = (prev >> 8) ^ CRC32_TABLE[0][prev & 0xFFu];
        }
}

static uint32_t load32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint32_t mw_stun_crc32(const uint8_t *buf, size_t len)
{
    const uint32_t (*t)[256] = CRC32_TABLE;
    uint32_t crc = 0xFFFFFFFFu;
    if (buf == NULL)
        return 0;
    for (; len >= 8; buf += 8, len -= 8) {
        uint32_t lo = crc ^ load32le(buf);
        uint32_t hi = load32le(buf + 4);
        crc = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24]
            ^ t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    }
    for (; len > 0; buf++, len--)
        crc = t[0][(crc ^ *buf) & 0xFFu] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static uint16_t read16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static uint32_t read32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t read64(const uint8_t *p)
{
    return ((uint64_t)read32(p) << 32) | read32(p + 4);
}

static void write16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void write32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The 14-bit type interleaves the method (M11..M0) with the class bits C1 (bit 8) and C0 (bit 4). */
static uint16_t type_method(uint16_t type)
{
    return (uint16_t)((type & 0x000Fu) | ((type & 0x00E0u) >> 1) | ((type & 0x3E00u) >> 2));
}

static uint16_t type_class(uint16_t type)
{
    return (uint16_t)(((type >> 4) & 1u) | ((type >> 7) & 2u));
}

/* XOR-MAPPED-ADDRESS value (RFC 5389 15.2): reserved, family, port ^ cookie >> 16, then the address
 * XORed with the cookie (IPv4) or with the cookie followed by the transaction id (IPv6). */
static int decode_xor_address(const uint8_t *msg, const uint8_t *v, size_t alen,
                              struct mw_stun_message *out)
{
    if (alen < 4)
        return MW_STUN_ATTR_BAD_LENGTH;
    uint8_t family = v[1];
    size_t addr_bytes;
    if (family == MW_STUN_FAMILY_IPV4)
        addr_bytes = 4;
    else if (family == MW_STUN_FAMILY_IPV6)
        addr_bytes = 16;
    else
        return MW_STUN_ATTR_BAD_VALUE;
    if (alen != 4 + addr_bytes)
        return MW_STUN_ATTR_BAD_LENGTH;
    out->mapped_family = family;
    out->mapped_port = (uint16_t)(read16(v + 2) ^ (MAGIC_COOKIE >> 16));
    /* msg + 4 is the cookie followed by the transaction id: the XOR pad. */
    for (size_t i = 0; i < addr_bytes; i++)
        out->mapped_address[i] = (uint8_t)(v[4 + i] ^ msg[4 + i]);
    return MW_STUN_OK;
}

/* ERROR-CODE value (RFC 5389 15.6): 21 reserved bits, class (3 bits, 3..6), number (0..99), reason. */
static int decode_error_code(size_t value_off, const uint8_t *v, size_t alen,
                             struct mw_stun_message *out)
{
    if (alen < 4 || alen > 4 + (size_t)MW_STUN_REASON_MAX_BYTES)
        return MW_STUN_ATTR_BAD_LENGTH;
    unsigned klass = v[2] & 0x07u;
    unsigned number = v[3];
    if (klass < 3 || klass > 6 || number > 99)
        return MW_STUN_ATTR_BAD_VALUE;
    out->error_code = (uint16_t)(klass * 100 + number);
    out->error_reason_offset = (uint32_t)(value_off + 4);
    out->error_reason_length = (uint32_t)(alen - 4);
    return MW_STUN_OK;
}

/* Decode one attribute whose value buf[value_off .. value_off + alen) lies inside the message.
 * Only the first occurrence of each known attribute is decoded; unknown types are skipped. */
static int decode_attribute(const uint8_t *buf, uint16_t type, size_t value_off, size_t alen,
                            struct mw_stun_message *out)
{
    const uint8_t *v = buf + value_off;
    uint32_t bit;
    int rc = MW_STUN_OK;

    switch (type) {
    case MW_STUN_ATTRIBUTE_USERNAME: bit = MW_STUN_HAS_USERNAME; break;
    case MW_STUN_ATTRIBUTE_MESSAGE_INTEGRITY: bit = MW_STUN_HAS_MESSAGE_INTEGRITY; break;
    case MW_STUN_ATTRIBUTE_ERROR_CODE: bit = MW_STUN_HAS_ERROR_CODE; break;
    case MW_STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS: bit = MW_STUN_HAS_XOR_MAPPED_ADDRESS; break;
    case MW_STUN_ATTRIBUTE_PRIORITY: bit = MW_STUN_HAS_PRIORITY; break;
    case MW_STUN_ATTRIBUTE_USE_CANDIDATE: bit = MW_STUN_HAS_USE_CANDIDATE; break;
    case MW_STUN_ATTRIBUTE_FINGERPRINT: bit = MW_STUN_HAS_FINGERPRINT; break;
    case MW_STUN_ATTRIBUTE_ICE_CONTROLLED: bit = MW_STUN_HAS_ICE_CONTROLLED; break;
    case MW_STUN_ATTRIBUTE_ICE_CONTROLLING: bit = MW_STUN_HAS_ICE_CONTROLLING; break;
    case MW_STUN_ATTRIBUTE_NOMINATION: bit = MW_STUN_HAS_NOMINATION; break;
    default: return MW_STUN_OK;
    }
    if (out->present & bit)
        return MW_STUN_OK;

    switch (type) {
    case MW_STUN_ATTRIBUTE_USERNAME:
        if (alen > MW_STUN_USERNAME_MAX_BYTES)
            return MW_STUN_ATTR_BAD_LENGTH;
        out->username_offset = (uint32_t)value_off;
        out->username_length = (uint32_t)alen;
        break;
    case MW_STUN_ATTRIBUTE_MESSAGE_INTEGRITY:
        if (alen != MW_STUN_INTEGRITY_BYTES)
            return MW_STUN_ATTR_BAD_LENGTH;
        out->integrity_offset = (uint32_t)(value_off - ATTR_HEADER_BYTES);
        break;
    case MW_STUN_ATTRIBUTE_ERROR_CODE:
        rc = decode_error_code(value_off, v, alen, out);
        break;
    case MW_STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS:
        rc = decode_xor_address(buf, v, alen, out);
        break;
    case MW_STUN_ATTRIBUTE_PRIORITY:
    case MW_STUN_ATTRIBUTE_NOMINATION:
        if (alen != 4)
            return MW_STUN_ATTR_BAD_LENGTH;
        if (type == MW_STUN_ATTRIBUTE_PRIORITY)
            out->priority = read32(v);
        else
            out->nomination = read32(v);
        break;
    case MW_STUN_ATTRIBUTE_USE_CANDIDATE:
        if (alen != 0)
            return MW_STUN_ATTR_BAD_LENGTH;
        break;
    case MW_STUN_ATTRIBUTE_ICE_CONTROLLED:
    case MW_STUN_ATTRIBUTE_ICE_CONTROLLING:
        if (alen != 8)
            return MW_STUN_ATTR_BAD_LENGTH;
        if (type == MW_STUN_ATTRIBUTE_ICE_CONTROLLED)
            out->ice_controlled = read64(v);
        else
            out->ice_controlling = read64(v);
        break;
    case MW_STUN_ATTRIBUTE_FINGERPRINT: {
        if (alen != 4)
            return MW_STUN_ATTR_BAD_LENGTH;
        /* It is the last attribute (the walk refuses anything after it), so the header's length
         * already ends after it, as the CRC input requires. */
        size_t attr_off = value_off - ATTR_HEADER_BYTES;
        uint32_t expected = mw_stun_crc32(buf, attr_off) ^ FINGERPRINT_XOR;
        out->fingerprint_offset = (uint32_t)attr_off;
        out->fingerprint_valid = read32(v) == expected;
        break;
    }
    default:
        break;
    }
    if (rc == MW_STUN_OK)
        out->present |= bit;
    return rc;
}

int mw_stun_parse(const uint8_t *buf, size_t len, struct mw_stun_message *msg)
{
    if (msg == NULL)
        return MW_STUN_TOO_SHORT;
    memset(msg, 0, sizeof *msg);
    if (buf == NULL || len < MW_STUN_HEADER_BYTES)
        return MW_STUN_TOO_SHORT;
    if (buf[0] & 0xC0u)
        return MW_STUN_NOT_STUN;
    if (read32(buf + 4) != MAGIC_COOKIE)
        return MW_STUN_BAD_COOKIE;
    size_t body = read16(buf + 2);
    if (body % 4 != 0)
        return MW_STUN_UNALIGNED_LENGTH;
    if (len != MW_STUN_HEADER_BYTES + body)
        return MW_STUN_LENGTH_MISMATCH;

    uint16_t type = read16(buf);
    msg->method = type_method(type);
    msg->message_class = type_class(type);

    size_t pos = MW_STUN_HEADER_BYTES;
    while (pos < len) {
        /* pos and len are multiples of 4, so a value that fits also has room for its padding. */
        if (len - pos < ATTR_HEADER_BYTES)
            return MW_STUN_ATTR_TRUNCATED;
        uint16_t attr_type = read16(buf + pos);
        size_t alen = read16(buf + pos + 2);
        size_t value_off = pos + ATTR_HEADER_BYTES;
        if (alen > len - value_off)
            return MW_STUN_ATTR_TRUNCATED;
        if (msg->present & MW_STUN_HAS_FINGERPRINT)
            return MW_STUN_FINGERPRINT_NOT_LAST;
        /* RFC 5389 15.4: after MESSAGE-INTEGRITY only FINGERPRINT counts. */
        if (!(msg->present & MW_STUN_HAS_MESSAGE_INTEGRITY)
            || attr_type == MW_STUN_ATTRIBUTE_FINGERPRINT) {
            int rc = decode_attribute(buf, attr_type, value_off, alen, msg);
            if (rc != MW_STUN_OK)
                return rc;
        }
        pos = value_off + ((alen + 3) & ~(size_t)3);
    }
    return MW_STUN_OK;
}

/* Header with the length set as if MESSAGE-INTEGRITY followed `off` bytes of message. */
static void write_header(uint8_t *out, uint16_t type, size_t off, const uint8_t *transaction_id)
{
    write16(out, type);
    write16(out + 2, (uint32_t)(off + INTEGRITY_ATTR_BYTES - MW_STUN_HEADER_BYTES));
    write32(out + 4, MAGIC_COOKIE);
    memcpy(out + 8, transaction_id, 12);
}

int mw_stun_build_binding_success(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                  int family, const uint8_t *address, uint16_t port)
{
    size_t addr_bytes;
    if (out == NULL || transaction_id == NULL || address == NULL)
        return MW_STUN_BUILD_BAD_ARGUMENT;
    if (family == MW_STUN_FAMILY_IPV4)
        addr_bytes = 4;
    else if (family == MW_STUN_FAMILY_IPV6)
        addr_bytes = 16;
    else
        return MW_STUN_BUILD_BAD_ARGUMENT;
    size_t off = MW_STUN_HEADER_BYTES + ATTR_HEADER_BYTES + 4 + addr_bytes;
    if (cap < off + INTEGRITY_ATTR_BYTES + FINGERPRINT_ATTR_BYTES)
        return MW_STUN_BUILD_NO_ROOM;

    /* Binding (0x001), class success: C1 set, C0 clear. */
    write_header(out, 0x0101, off, transaction_id);
    uint8_t *a = out + MW_STUN_HEADER_BYTES;
    write16(a, MW_STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS);
    write16(a + 2, (uint32_t)(4 + addr_bytes));
    a[4] = 0;
    a[5] = (uint8_t)family;
    write16(a + 6, port ^ (MAGIC_COOKIE >> 16));
    for (size_t i = 0; i < addr_bytes; i++)
        a[8 + i] = (uint8_t)(address[i] ^ out[4 + i]);
    return (int)off;
}

int mw_stun_build_binding_error(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                int code, const uint8_t *reason, size_t reason_len)
{
    return mw_stun_build_error_response(out, cap, transaction_id, MW_STUN_METHOD_BINDING, code,
                                        reason, reason_len);
}

int mw_stun_build_error_response(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                 int method, int code, const uint8_t *reason, size_t reason_len)
{
    if (out == NULL || transaction_id == NULL || (reason == NULL && reason_len != 0))
        return MW_STUN_BUILD_BAD_ARGUMENT;
    if (method < 0 || method > 0xFFF)
        return MW_STUN_BUILD_BAD_ARGUMENT;
    if (code < 300 || code > 699 || reason_len > MW_STUN_REASON_MAX_BYTES)
        return MW_STUN_BUILD_BAD_ARGUMENT;
    size_t padded = (reason_len + 3) & ~(size_t)3;
    size_t off = MW_STUN_HEADER_BYTES + ATTR_HEADER_BYTES + 4 + padded;
    if (cap < off + INTEGRITY_ATTR_BYTES + FINGERPRINT_ATTR_BYTES)
        return MW_STUN_BUILD_NO_ROOM;

    /* The method's bits around the class bits (RFC 5389 6), class error: C1 and C0 set. */
    uint32_t m = (uint32_t)method;
    uint32_t type = (m & 0x000Fu) | ((m & 0x0070u) << 1) | ((m & 0x0F80u) << 2) | 0x0110u;
    write_header(out, type, off, transaction_id);
    uint8_t *a = out + MW_STUN_HEADER_BYTES;
    write16(a, MW_STUN_ATTRIBUTE_ERROR_CODE);
    write16(a + 2, (uint32_t)(4 + reason_len));
    a[4] = 0;
    a[5] = 0;
    a[6] = (uint8_t)(code / 100);
    a[7] = (uint8_t)(code % 100);
    if (reason_len != 0)
        memcpy(a + 8, reason, reason_len);
    memset(a + 8 + reason_len, 0, padded - reason_len);
    return (int)off;
}

int mw_stun_build_finish(uint8_t *out, size_t cap, size_t off, const uint8_t *hmac_sha1)
{
    if (out == NULL || off < MW_STUN_HEADER_BYTES || off % 4 != 0 || off > cap)
        return MW_STUN_BUILD_BAD_ARGUMENT;
    size_t end = off + (hmac_sha1 != NULL ? INTEGRITY_ATTR_BYTES : 0);
    if (end + FINGERPRINT_ATTR_BYTES > MAX_MESSAGE_BYTES)
        return MW_STUN_BUILD_BAD_ARGUMENT;
    if (cap - off < end - off + FINGERPRINT_ATTR_BYTES)
        return MW_STUN_BUILD_NO_ROOM;

    if (hmac_sha1 != NULL) {
        write16(out + off, MW_STUN_ATTRIBUTE_MESSAGE_INTEGRITY);
        write16(out + off + 2, MW_STUN_INTEGRITY_BYTES);
        memcpy(out + off + 4, hmac_sha1, MW_STUN_INTEGRITY_BYTES);
    }
    write16(out + 2, (uint32_t)(end + FINGERPRINT_ATTR_BYTES - MW_STUN_HEADER_BYTES));
    uint32_t crc = mw_stun_crc32(out, end) ^ FINGERPRINT_XOR;
    write16(out + end, MW_STUN_ATTRIBUTE_FINGERPRINT);
    write16(out + end + 2, 4);
    write32(out + end + 4, crc);
    return (int)(end + FINGERPRINT_ATTR_BYTES);
}
