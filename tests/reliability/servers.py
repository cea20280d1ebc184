"""Ports, certificates and TLS clients for the servers the reliability tests start."""

from __future__ import annotations

import subprocess
from pathlib import Path

import tritonclient.grpc as grpcclient

from distilbert_serving.launch import LocalServer


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for localhost and 127.0.0.1, valid one day."""
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_client(server: LocalServer, cert: Path) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(
        f"localhost:{server.options.grpc_port}", ssl=True, root_certificates=str(cert)
    )
