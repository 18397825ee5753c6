"""Certificates for the local control plane: one CA, the apiserver's serving cert, client certs, SA keys."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# client name -> (CN, O): the identities Kubernetes' RBAC bootstrap policy knows.
CLIENTS = {
    "admin": ("kubernetes-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
    # The real node (node.py): the Node authorizer knows system:node:<name>; RBAC binds system:node-proxier.
    "kubelet": ("system:node:real-0", "system:nodes"),
    "kube-proxy": ("system:kube-proxy", None),
}
# Addresses the apiserver answers on: loopback, the bridge's gateway (pods and the host with a real node) and
# the `kubernetes` Service (pods' in-cluster config).
APISERVER_IPS = ("127.0.0.1", "198.18.0.1", "198.19.0.1")
_VALID = dt.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def ensure(pki: Path) -> None:
    """Create what is missing under `pki`; existing files are kept so that kubeconfigs stay valid."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "ca.crt").exists() and all((pki / f"{c}.crt").exists() for c in CLIENTS) and _has_ips(pki):
        return
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = _key()
    ca_name = _name("mlmodel-local-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki / "ca.key", ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(stem: str, subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> None:
        key = _key()
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _VALID)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write_key(pki / f"{stem}.key", key)
        (pki / f"{stem}.crt").write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    issue(
        "apiserver",
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName(d) for d in dns]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in APISERVER_IPS],
    )
    for stem, (cn, org) in CLIENTS.items():
        issue(stem, _name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH, [])

    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa)
    (pki / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _has_ips(pki: Path) -> bool:
    """The apiserver's certificate names every address in APISERVER_IPS (else an older layout: make anew)."""
    try:
        cert = x509.load_pem_x509_certificate((pki / "apiserver.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    return set(APISERVER_IPS) <= have


# The aggregation layer (extension API servers such as KEDA's metrics server): the apiserver authenticates to
# them with the front-proxy client certificate, issued by a CA of its own that they trust for request headers.
FRONT_PROXY_CLIENT = "front-proxy-client"


def ensure_front_proxy(pki: Path) -> None:
    """front-proxy-ca.{crt,key} and front-proxy-client.{crt,key}, unless present (the cluster CA is untouched)."""
    stems = ("front-proxy-ca", FRONT_PROXY_CLIENT)
    if all((pki / f"{stem}.{ext}").exists() for stem in stems for ext in ("crt", "key")):
        return
    issue_ca_and_leaf(pki, "front-proxy-ca", FRONT_PROXY_CLIENT, _name(FRONT_PROXY_CLIENT), [], client=True)


def issue_ca_and_leaf(
    folder: Path, ca_stem: str, leaf_stem: str, subject: x509.Name, sans: list[x509.GeneralName], *, client: bool,
    server: bool = False,
) -> None:
    """A CA of its own (`ca_stem`.crt/.key) and one certificate it signs (`leaf_stem`.crt/.key) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = _key()
    ca_name = _name(f"mlmodel-local-{ca_stem}")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    usages += [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    key = _key()
    b = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + _VALID)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(folder / f"{leaf_stem}.key", key)
    (folder / f"{leaf_stem}.crt").write_bytes(b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    _write_key(folder / f"{ca_stem}.key", ca_key)
    (folder / f"{ca_stem}.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
