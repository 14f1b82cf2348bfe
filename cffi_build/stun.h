/* mediaworker hot path: STUN message parse and binding response build (RFC 5389/8489, ICE attributes of RFC 8445). */
#ifndef MW_STUN_H
#define MW_STUN_H

#include <stddef.h>
#include <stdint.h>

/* Why mw_stun_parse refused a datagram. The values are part of the facade's API and the pure-Python
 * reference (tests/reference/stun.py) uses the same numbers. */
enum mw_stun_reason {
    MW_STUN_OK = 0,
    MW_STUN_TOO_SHORT = 1,           /* fewer than the 20 bytes of a STUN header */
    MW_STUN_NOT_STUN = 2,            /* the two most significant bits of the type are not zero */
    MW_STUN_BAD_COOKIE = 3,          /* the magic cookie is not 0x2112A442 */
    MW_STUN_UNALIGNED_LENGTH = 4,    /* the header's length is not a multiple of 4 */
    MW_STUN_LENGTH_MISMATCH = 5,     /* 20 + the header's length is not the datagram's length */
    MW_STUN_ATTR_TRUNCATED = 6,      /* an attribute's header or value runs past the message */
    MW_STUN_ATTR_BAD_LENGTH = 7,     /* a known attribute has a length its definition forbids */
    MW_STUN_ATTR_BAD_VALUE = 8,      /* a known attribute has a value its definition forbids */
    MW_STUN_FINGERPRINT_NOT_LAST = 9 /* an attribute follows FINGERPRINT */
};

/* Message classes (the C1 C0 bits of the type). */
enum mw_stun_class {
    MW_STUN_CLASS_REQUEST = 0,
    MW_STUN_CLASS_INDICATION = 1,
    MW_STUN_CLASS_SUCCESS = 2,
    MW_STUN_CLASS_ERROR = 3
};

/* Wire constants. */
enum mw_stun_constant {
    MW_STUN_HEADER_BYTES = 20,
    MW_STUN_METHOD_BINDING = 0x001,
    MW_STUN_FAMILY_IPV4 = 1,
    MW_STUN_FAMILY_IPV6 = 2,
    MW_STUN_USERNAME_MAX_BYTES = 512,   /* RFC 5389 15.3: fewer than 513 bytes */
    MW_STUN_REASON_MAX_BYTES = 763,     /* RFC 5389 15.6 */
    MW_STUN_INTEGRITY_BYTES = 20,       /* HMAC-SHA1 */
    MW_STUN_BUILD_MAX_BYTES = 832       /* the largest message the builders write */
};

/* Attribute types this parser decodes. Every other type is skipped. */
enum mw_stun_attribute {
    MW_STUN_ATTRIBUTE_USERNAME = 0x0006,
    MW_STUN_ATTRIBUTE_MESSAGE_INTEGRITY = 0x0008,
    MW_STUN_ATTRIBUTE_ERROR_CODE = 0x0009,
    MW_STUN_ATTRIBUTE_XOR_MAPPED_ADDRESS = 0x0020,
    MW_STUN_ATTRIBUTE_PRIORITY = 0x0024,
    MW_STUN_ATTRIBUTE_USE_CANDIDATE = 0x0025,
    MW_STUN_ATTRIBUTE_FINGERPRINT = 0x8028,
    MW_STUN_ATTRIBUTE_ICE_CONTROLLED = 0x8029,
    MW_STUN_ATTRIBUTE_ICE_CONTROLLING = 0x802A,
    MW_STUN_ATTRIBUTE_NOMINATION = 0xC001
};

/* Bits of mw_stun_message.present: which decoded attributes the message carries. */
enum mw_stun_present {
    MW_STUN_HAS_USERNAME = 1 << 0,
    MW_STUN_HAS_PRIORITY = 1 << 1,
    MW_STUN_HAS_USE_CANDIDATE = 1 << 2,
    MW_STUN_HAS_ICE_CONTROLLING = 1 << 3,
    MW_STUN_HAS_ICE_CONTROLLED = 1 << 4,
    MW_STUN_HAS_ERROR_CODE = 1 << 5,
    MW_STUN_HAS_XOR_MAPPED_ADDRESS = 1 << 6,
    MW_STUN_HAS_MESSAGE_INTEGRITY = 1 << 7,
    MW_STUN_HAS_FINGERPRINT = 1 << 8,
    MW_STUN_HAS_NOMINATION = 1 << 9
};

/* What mw_stun_parse found. Offsets count from the first byte of the datagram; a field is only
 * meaningful when its MW_STUN_HAS_* bit is set in `present`. The transaction id is bytes 8..19. */
struct mw_stun_message {
    uint64_t ice_controlling;        /* tie breaker */
    uint64_t ice_controlled;         /* tie breaker */
    uint32_t present;                /* MW_STUN_HAS_* bits */
    uint32_t priority;
    uint32_t nomination;
    uint32_t username_offset;        /* of the value */
    uint32_t username_length;
    uint32_t error_reason_offset;    /* of the reason phrase */
    uint32_t error_reason_length;
    uint32_t integrity_offset;       /* of the MESSAGE-INTEGRITY attribute header: the HMAC input end */
    uint32_t fingerprint_offset;     /* of the FINGERPRINT attribute header: the CRC-32 input end */
    uint16_t method;                 /* 12 bits, MW_STUN_METHOD_BINDING = 1 */
    uint16_t message_class;          /* mw_stun_class */
    uint16_t error_code;             /* class * 100 + number, 300..699 */
    uint16_t mapped_port;            /* XOR-MAPPED-ADDRESS, decoded */
    uint8_t mapped_family;           /* MW_STUN_FAMILY_IPV4 or _IPV6 */
    uint8_t fingerprint_valid;       /* 1 when the FINGERPRINT value matches the message */
    uint8_t mapped_address[16];      /* decoded address: 4 bytes (IPv4) or 16 bytes (IPv6) */
};

/* Parse one STUN message of exactly `len` bytes (a UDP datagram or one RFC 4571 frame). Returns
 * MW_STUN_OK and fills *msg, or a mw_stun_reason and leaves *msg unspecified. Reads nothing past
 * buf[len - 1], never allocates. Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are
 * walked (they must fit) but not decoded; only the first occurrence of each attribute counts. */
int mw_stun_parse(const uint8_t *buf, size_t len, struct mw_stun_message *msg);

/* CRC-32 (ISO-HDLC, the one zlib computes) of buf[0..len). */
uint32_t mw_stun_crc32(const uint8_t *buf, size_t len);

/* Builders, in two steps because HMAC-SHA1 is computed by the caller:
 *   1. mw_stun_build_binding_success / mw_stun_build_binding_error write the header and the
 *      message's attributes into out, with the header length set as if MESSAGE-INTEGRITY came next
 *      (RFC 5389 15.4), and return `off`, the offset where MESSAGE-INTEGRITY goes: the HMAC input
 *      is out[0..off).
 *   2. mw_stun_build_finish writes MESSAGE-INTEGRITY at off (when hmac_sha1 is not NULL), then
 *      FINGERPRINT, sets the final header length and returns the message's total length.
 * Each returns a negative mw_stun_build_error on bad arguments or too small an out buffer. */
enum mw_stun_build_error {
    MW_STUN_BUILD_NO_ROOM = -1,
    MW_STUN_BUILD_BAD_ARGUMENT = -2
};

int mw_stun_build_binding_success(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                  int family, const uint8_t *address, uint16_t port);
int mw_stun_build_binding_error(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                int code, const uint8_t *reason, size_t reason_len);
/* The same error response for a request of any method (0..0xFFF): RFC 5389 7.3.1 answers a
 * request with its own method. */
int mw_stun_build_error_response(uint8_t *out, size_t cap, const uint8_t *transaction_id,
                                 int method, int code, const uint8_t *reason, size_t reason_len);
int mw_stun_build_finish(uint8_t *out, size_t cap, size_t off, const uint8_t *hmac_sha1);

#endif
