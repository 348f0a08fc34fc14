"""Certificates (openssl CLI) and tokens (Python cryptography / hmac) made by
the tests themselves, for the security suites."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import time
from pathlib import Path


def make_cert(dirpath: Path, name: str = "server", cn: str = "localhost") -> tuple[Path, Path]:
    """A self-signed EC P-256 certificate for `cn` and 127.0.0.1; returns (cert, key)."""
    cert = Path(dirpath) / f"{name}.crt"
    key = Path(dirpath) / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=DNS:{cn},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return cert, key


def client_ssl(cafile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False  # the certificate names localhost and 127.0.0.1
    return ctx


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_hs256(claims: dict, secret: str, header: dict | None = None) -> str:
    h = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


def jwt_unsigned(claims: dict, alg: str = "none") -> str:
    h = b64url(json.dumps({"alg": alg}).encode())
    p = b64url(json.dumps(claims).encode())
    return f"{h}.{p}."


def es256_keypair(dirpath: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    path = Path(dirpath) / "jwt_es256.pub.pem"
    path.write_bytes(pem)
    return key, path


def rs256_keypair(dirpath: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    path = Path(dirpath) / "jwt_rs256.pub.pem"
    path.write_bytes(pem)
    return key, path


def jwt_es256(claims: dict, key) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    h = b64url(json.dumps({"alg": "ES256"}).encode())
    p = b64url(json.dumps(claims).encode())
    der = key.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{h}.{p}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def jwt_rs256(claims: dict, key) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    h = b64url(json.dumps({"alg": "RS256"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = key.sign(f"{h}.{p}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{h}.{p}.{b64url(sig)}"


def now() -> int:
    return int(time.time())
