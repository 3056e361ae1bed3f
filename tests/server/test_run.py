"""Starting the server (``supportdesk serve``): its settings checked before anything loads."""

from __future__ import annotations

import pytest


def test_tls_files_are_checked_before_anything_loads(cli, tmp_path, monkeypatch):
    """A missing or bad serve.ssl_certfile / ssl_keyfile: one line naming the setting and the file, at once
    (before, FileNotFoundError or 'SSLError: PEM lib' after the whole load)."""
    import shutil
    import subprocess

    import supportdesk.server.core as core_module

    def never(*args, **kwargs):
        raise RuntimeError("the core started loading")

    monkeypatch.setattr(core_module.ServerCore, "__init__", never)

    def serve(cert=None, key=None, host="127.0.0.1"):
        for name, value in (("CERTFILE", cert), ("KEYFILE", key)):
            if value is None:
                monkeypatch.delenv(f"SUPPORTDESK_SERVE__SSL_{name}", raising=False)
            else:
                monkeypatch.setenv(f"SUPPORTDESK_SERVE__SSL_{name}", str(value))
        result = cli("serve", "--host", host, "--port", "0")
        assert result.exit_code == 1 and "Traceback" not in result.output
        return [line for line in result.output.splitlines() if line.strip()]

    missing = tmp_path / "missing.pem"
    lines = serve(cert=missing, key=tmp_path / "key.pem")
    assert lines == [f"error: cannot serve: serve.ssl_certfile {missing}: no such file"]
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "serve.ssl_certfile" in serve(cert=junk)[-1] and "not a PEM certificate" in serve(cert=junk)[-1]
    # Only the key: it would have served plain HTTP on 0.0.0.0 without a word.
    lines = serve(key=junk, host="0.0.0.0")
    assert len(lines) == 1 and "serve.ssl_keyfile" in lines[0] and "serve.ssl_certfile is not" in lines[0]
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the certificate cases need it")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    lines = serve(cert=cert, host="0.0.0.0")  # a certificate without its key, and no key file
    assert len(lines) == 1 and f"serve.ssl_certfile {cert} holds no private key" in lines[0]
    assert "serve.ssl_keyfile is not set" in lines[0]
    lines = serve(cert=cert, key=junk)
    assert len(lines) == 1 and f"serve.ssl_keyfile {junk}: not the unencrypted PEM private key" in lines[0]
    # Both right: TLS, no clear-text warning; the core is what starts next.
    lines = serve(cert=cert, key=key, host="0.0.0.0")
    assert lines == ["error: cannot serve: the core started loading"]
    lines = serve(host="0.0.0.0")
    assert "without TLS" in lines[0] and lines[-1] == "error: cannot serve: the core started loading"
