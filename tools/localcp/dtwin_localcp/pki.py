"""Keys, certificates, tokens and kubeconfigs for a local control plane.

Everything is generated with the `openssl` command line tool (the `cryptography`
package is not a dependency of this project): a throw-away CA, a kube-apiserver
serving certificate for 127.0.0.1/localhost signed by it, and the service-account
key pair that kube-apiserver signs tokens with and kube-controller-manager uses for
its token controller. Clients authenticate with static bearer tokens
(`--token-auth-file`); every identity is in `system:masters`, which is acceptable
for a loopback-only test plane. `render_kubeconfig` is a pure function so that it
can be unit-tested without openssl.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

#: Identities written to the token file: kubeconfig name -> (user name, uid).
IDENTITIES: dict[str, tuple[str, str]] = {
    "admin": ("admin", "admin-uid"),
    "controller-manager": ("system:kube-controller-manager", "kcm-uid"),
    "scheduler": ("system:kube-scheduler", "scheduler-uid"),
    "kwok": ("kwok-controller", "kwok-uid"),
}
MASTERS_GROUP = "system:masters"
#: Names the apiserver certificate is valid for. 10.0.0.1 is the first address of
#: the service range (the in-cluster `kubernetes` Service); it is never dialled.
SERVING_SANS = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "IP:10.0.0.1",
)


@dataclass(frozen=True)
class Pki:
    """Paths of the generated material (all below `RUN/pki`) and the tokens."""

    dir: Path
    tokens: dict[str, str]

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    @property
    def token_file(self) -> Path:
        return self.dir / "tokens.csv"


def _openssl(*args: str | Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl is needed to generate the control plane's certificates")
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def render_token_file(tokens: dict[str, str]) -> str:
    """CSV for `--token-auth-file`: `token,user,uid,"group"` per identity."""
    lines = []
    for name, token in tokens.items():
        user, uid = IDENTITIES[name]
        lines.append(f'{token},{user},{uid},"{MASTERS_GROUP}"')
    return "\n".join(lines) + "\n"


def render_kubeconfig(server: str, ca_file: Path, token: str, user: str, namespace: str = "default") -> str:
    """A single-context kubeconfig using bearer-token auth against `server`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dtwin-local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "dtwin-local",
                "context": {"cluster": "dtwin-local", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "dtwin-local",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def generate(pki_dir: Path) -> Pki:
    """Create a fresh CA, serving cert, SA key pair and token file in `pki_dir`."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    pki = Pki(pki_dir, {name: secrets.token_hex(24) for name in IDENTITIES})
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", pki.ca_key, "-out", pki.ca_cert, "-days", "3650",
        "-subj", "/CN=dtwin-local-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    csr = pki_dir / "apiserver.csr"
    _openssl("req", "-new", *ec, "-keyout", pki.serving_key, "-out", csr, "-subj", "/CN=kube-apiserver")
    ext = pki_dir / "apiserver.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        f"subjectAltName={','.join(SERVING_SANS)}\n"
    )
    _openssl(
        "x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", pki.ca_key,
        "-set_serial", str(secrets.randbits(63)), "-days", "3650", "-out", pki.serving_cert, "-extfile", ext,
    )  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pki.sa_key)
    _openssl("pkey", "-in", pki.sa_key, "-pubout", "-out", pki.sa_pub)
    for path in (csr, ext):
        path.unlink()
    for key in (pki.ca_key, pki.serving_key, pki.sa_key):
        key.chmod(0o600)
    _write_private(pki.token_file, render_token_file(pki.tokens))
    return pki


def load_tokens(token_file: Path) -> dict[str, str]:
    """Read back the tokens of an existing token file (name -> token)."""
    by_user = {user: name for name, (user, _uid) in IDENTITIES.items()}
    tokens = {}
    for line in token_file.read_text().splitlines():
        fields = line.split(",")
        if len(fields) >= 2 and fields[1] in by_user:
            tokens[by_user[fields[1]]] = fields[0]
    return tokens
