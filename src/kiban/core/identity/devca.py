"""A development certificate authority and "virtual cards" that behave like the My Number
Card's 利用者証明用電子証明書 for demos and tests: an RSA-2048 key pair, a certificate issued by
the CA, a CRL the CA signs. Nothing here is trusted unless ``KIBAN_JPKI_DEV_CA_ENABLED`` is set,
and every certificate says in its name that it is for development only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CA_NAME = "Kiban 開発用認証局（本番利用不可）"


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kiban Development"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class DevCA:
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def revoked_path(self) -> Path:
        return self.directory / "revoked.json"

    def card_path(self, name: str) -> Path:
        return self.directory / "cards" / f"{name}.card.pem"

    def exists(self) -> bool:
        return self.cert_path.exists() and self.key_path.exists()

    def init(self) -> None:
        """Create the CA (idempotent) and an empty CRL."""
        if self.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(CA_NAME)).issuer_name(_name(CA_NAME))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
                .sign(key, hashes.SHA256()))
        self.key_path.write_bytes(_pem_key(key))
        self.key_path.chmod(0o600)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.revoked_path.write_text("[]")
        self.write_crl()

    def _ca(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        if not self.exists():
            raise FileNotFoundError(f"開発用認証局がありません: {self.directory}（kiban card init-ca）")
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        return cert, key

    def issue(self, name: str, *, not_before: datetime | None = None, not_after: datetime | None = None,
              issuer: DevCA | None = None) -> Path:
        """A virtual card: the holder's key and certificate in one PEM file."""
        ca_cert, ca_key = (issuer or self)._ca()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(_name(f"仮想カード {name}（開発用）"))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before or now - timedelta(minutes=5))
                .not_valid_after(not_after or now + timedelta(days=5 * 365))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                .sign(ca_key, hashes.SHA256()))
        path = self.card_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + _pem_key(key))
        path.chmod(0o600)
        return path

    def revoke(self, name: str) -> int:
        card = load_card(self.card_path(name))
        revoked = json.loads(self.revoked_path.read_text())
        if card.certificate.serial_number not in revoked:
            revoked.append(card.certificate.serial_number)
            self.revoked_path.write_text(json.dumps(revoked))
        self.write_crl()
        return card.certificate.serial_number

    def write_crl(self) -> None:
        ca_cert, ca_key = self._ca()
        now = datetime.now(UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(now - timedelta(minutes=1)).next_update(now + timedelta(days=7)))
        for serial in json.loads(self.revoked_path.read_text()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
        self.crl_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class VirtualCard:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def sign(self, challenge: str) -> str:
        """What the card does with its 4-digit PIN entered: sign the challenge (RSA PKCS#1 v1.5,
        SHA-256), returned base64."""
        signature = self.key.sign(challenge.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def load_card(path: Path) -> VirtualCard:
    data = path.read_bytes()
    return VirtualCard(x509.load_pem_x509_certificate(data),
                       serialization.load_pem_private_key(data, password=None))
