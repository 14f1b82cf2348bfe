"""The worker's DTLS certificate: generated at start (ECDSA P-256, signed with SHA-256, valid for
ten years, as mediasoup's) or loaded from the PEM files given on the command line, and its local
fingerprints in the five algorithms mediasoup announces.
"""

from __future__ import annotations

import datetime
import functools
import secrets
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

__all__ = ["FINGERPRINT_ALGORITHMS", "CertificateError", "DtlsCertificate", "fingerprint"]

# mediasoup's local fingerprint algorithms, in the order it lists them.
FINGERPRINT_ALGORITHMS: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1(),
    "sha-224": hashes.SHA224(),
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}
VALIDITY: Final = datetime.timedelta(days=3650)


class CertificateError(ValueError):
    """The certificate or key files cannot be used."""


def fingerprint(certificate: x509.Certificate, algorithm: str) -> str:
    """The certificate's fingerprint as SDP writes it: upper-case hex pairs joined by colons."""
    digest = certificate.fingerprint(FINGERPRINT_ALGORITHMS[algorithm])
    return ":".join(f"{byte:02X}" for byte in digest)


@dataclass(frozen=True)
class DtlsCertificate:
    certificate: x509.Certificate
    private_key: PrivateKeyTypes

    @classmethod
    def generate(cls) -> DtlsCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediaworker")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(secrets.randbits(63) + 1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + VALIDITY)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, certificate_file: str, private_key_file: str) -> DtlsCertificate:
        try:
            with open(certificate_file, "rb") as f:
                certificate = x509.load_pem_x509_certificate(f.read())
            with open(private_key_file, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise CertificateError(f"cannot load the DTLS certificate or key: {exc}") from exc
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CertificateError("the DTLS private key does not match the certificate")
        return cls(certificate, key)

    @functools.cached_property
    def _fingerprints(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, fingerprint(self.certificate, name)) for name in FINGERPRINT_ALGORITHMS)

    def fingerprints(self) -> list[dict[str, str]]:
        """``dtlsParameters.fingerprints`` as mediasoup answers them (computed once)."""
        return [{"algorithm": name, "value": value} for name, value in self._fingerprints]
