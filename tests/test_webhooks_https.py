"""Webhook deliveries over HTTPS (``api.webhooks_http.HttpSender``) to a real TLS receiver on
127.0.0.1, with a certificate made for the test by the ``openssl`` command: the certificate is
checked against the host as written in the URL (never the address connected to), an untrusted
or misnamed certificate is a failed attempt that names the reason, and kept-alive TLS
connections are reused."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from api.webhooks_http import HttpSender
from workflow.webhooks_dispatch import Request, Sent
from workflow.webhooks_urls import Target

from .test_webhooks_http import _answer, server

HOST = "hooks.test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``hooks.test`` (its own authority) and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command makes the test certificate; it is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    argv += ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={HOST}"]
    argv += ["-addext", f"subjectAltName=DNS:{HOST}"]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    return ctx


def _trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def _request(port: int, host: str = HOST, body: str = "{}") -> Request:
    target = Target(f"https://{host}:{port}/in", "https", host, port, "127.0.0.1")
    return Request(target, {"content-type": "application/json"}, body.encode())


def test_deliveries_over_tls_share_one_kept_alive_connection(
    certificate: tuple[Path, Path],
) -> None:
    with server(_answer(204), _server_tls(certificate)) as rx:
        sender = HttpSender(timeout=5, tls=_trusting(certificate))
        try:
            sent = [sender(_request(rx.port, body=f'{{"n":{i}}}')) for i in range(3)]
        finally:
            sender.close()
    assert [(s.status_code, s.error, s.ok) for s in sent] == [(204, None, True)] * 3
    assert [(path, body) for _port, path, body in rx.seen] == [
        ("/in", f'{{"n":{i}}}') for i in range(3)
    ]
    assert rx.connections() == 1


def _refused(
    certificate: tuple[Path, Path], tls: ssl.SSLContext | None, host: str = HOST
) -> tuple[Sent, int]:
    """One attempt that the TLS check should fail: (what the sender says, requests seen)."""
    with server(_answer(204), _server_tls(certificate)) as rx:
        sender = HttpSender(timeout=5, tls=tls)
        try:
            sent = sender(_request(rx.port, host=host))
        finally:
            sender.close()
    assert sent.status_code is None and not sent.ok
    assert sent.error is not None and sent.error.startswith("SSLCertVerificationError: ")
    return sent, len(rx.seen)


def test_a_certificate_for_another_name_is_a_failed_attempt(
    certificate: tuple[Path, Path],
) -> None:
    """The address is the one checked at subscription, but the certificate must name the
    host of the URL: here ``other.test``, which the certificate does not name."""
    sent, seen = _refused(certificate, _trusting(certificate), host="other.test")
    assert "Hostname mismatch, certificate is not valid for 'other.test'" in str(sent.error)
    assert seen == 0


def test_an_untrusted_certificate_is_a_failed_attempt(certificate: tuple[Path, Path]) -> None:
    """The default trust store (certifi's authorities) does not trust a self-signed one."""
    sent, seen = _refused(certificate, None)
    assert "self-signed certificate" in str(sent.error)
    assert seen == 0
