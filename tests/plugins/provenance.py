"""An operator's C2PA signing certificate, made by the test (no real CA, no network)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def operator_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A test CA and an ES256 signing certificate it issued (chain PEM, key PEM).

    c2pa-rs signs with a certificate that has digitalSignature and an EKU such as
    emailProtection, issued by a CA; the reader then reports it as untrusted (no trust list),
    which is what a test certificate is.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "headshots tests"),
            ]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    valid = {"not_valid_before": now - datetime.timedelta(days=1)}
    ca = (
        x509.CertificateBuilder(
            subject_name=name("headshots test CA"),
            issuer_name=name("headshots test CA"),
            public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(),
            not_valid_after=now + datetime.timedelta(days=30),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder(
            subject_name=name("headshots signer"),
            issuer_name=ca.subject,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            not_valid_after=now + datetime.timedelta(days=30),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("c2pa")
    chain, private = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, private
