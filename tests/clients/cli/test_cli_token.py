"""wsbroker-cli token / verify (issue 22, item 6): tokens minted by the CLI
(HS256 with a secret, RS256 and ES256 with a PEM private key) carry the grants
the broker enforces, are refused by a broker with another key or once
expired, and `verify` (the broker's own verifier) round-trips them."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

SECRET = "cli-token-secret-0123456789abcdefghij"


def make_key(tmp_path, alg: str):
    """(private PEM, public PEM) paths for RS256 or ES256, made by openssl."""
    priv, pub = tmp_path / f"{alg}.key", tmp_path / f"{alg}.pub"
    gen = (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if alg == "RS256" else
           ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    subprocess.run(["openssl", "genpkey", *gen, "-out", str(priv)], check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True, timeout=60)
    return priv, pub


def mint(cli, *args) -> str:
    r = cli.run("token", *args)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert r.stdout == token + "\n" and token.count(".") == 2
    return token


def pub(cli, broker, token, topic):
    return cli.run("--url", broker.ws_url, "--token", token, "pub", topic, '{"n":1}')


def credentials(tmp_path, alg):
    """(the broker's flags, the CLI's signing flags, the CLI's verify flags)."""
    if alg == "HS256":
        return ["--auth-jwt-secret", SECRET], ["--secret", SECRET], ["--secret", SECRET]
    priv, pubkey = make_key(tmp_path, alg)
    return ["--auth-jwt-public-key", str(pubkey)], ["--key", str(priv)], ["--key", str(pubkey)]


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_minted_token_grants_what_it_says(cli, broker_factory, tmp_path, alg):
    bflags, sign, _ = credentials(tmp_path, alg)
    b = broker_factory("--auth-required", "true", *bflags)
    token = mint(cli, *sign, "--sub", "alice", "--subscribe", "chat.>", "--publish", "chat.room1",
                 "--ttl", "1h")
    header = json.loads(_b64(token.split(".")[0]))
    assert header["alg"] == alg
    sub = cli.start("--url", b.ws_url, "--token", token, "-v", "--count", "1", "sub", "chat.>")
    sub.wait_stderr("subscribed: chat.>")
    ok = pub(cli, b, token, "chat.room1")
    assert ok.returncode == 0, ok.stderr
    assert sub.wait() == 0, sub.err_lines
    assert json.loads(sub.out_lines[0])["data"] == {"n": 1}
    denied = pub(cli, b, token, "chat.room2")
    assert denied.returncode == 1 and "forbidden" in denied.stderr, denied.stderr


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_token_of_another_key_is_refused(cli, broker_factory, tmp_path, alg):
    bflags, _, _ = credentials(tmp_path, alg)
    b = broker_factory("--auth-required", "true", *bflags)
    other = tmp_path / "other"
    other.mkdir()
    _, sign, _ = credentials(other, alg)
    if alg == "HS256":
        sign = ["--secret", SECRET + "-other"]
    token = mint(cli, *sign, "--sub", "mallory", "--publish", ">")
    r = pub(cli, b, token, "chat.room1")
    assert r.returncode == 1, r.stderr


def _b64(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_expired_token_is_refused_by_broker_and_verify(cli, broker_factory):
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET, "--auth-leeway", "0")
    token = mint(cli, "--secret", SECRET, "--sub", "alice", "--publish", ">", "--ttl", "1s")
    exp = json.loads(_b64(token.split(".")[1]))["exp"]
    # The condition is the clock itself: the token is expired once it passed exp.
    while time.time() < exp + 1:
        time.sleep(0.05)
    r = pub(cli, b, token, "chat.room1")
    assert r.returncode == 1, r.stderr
    v = cli.run("verify", token, "--secret", SECRET)
    assert v.returncode == 1 and "invalid token" in v.stderr and "expired" in v.stderr, v.stderr
    assert v.stdout == ""


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_verify_round_trip(cli, tmp_path, alg):
    _, sign, check = credentials(tmp_path, alg)
    token = mint(cli, *sign, "--sub", "bob", "--subscribe", "a.*", "--subscribe", "b.>",
                 "--publish", "a.x", "--ttl", "30m", "--admin")
    v = cli.run("verify", token, *check)
    assert v.returncode == 0, v.stderr
    claims_text, status = v.stdout.rsplit("}\n", 1)
    claims = json.loads(claims_text + "}")
    assert claims["sub"] == "bob" and claims["admin"] is True
    assert claims["subscribe"] == ["a.*", "b.>"] and claims["publish"] == ["a.x"]
    assert claims["exp"] - claims["iat"] == 1800
    assert abs(claims["iat"] - time.time()) < 600
    assert status.startswith("valid: expires in ")
    # A private key also verifies (its public half is used).
    if alg != "HS256":
        assert cli.run("verify", token, *sign).returncode == 0
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    bad = cli.run("verify", tampered, *check)
    assert bad.returncode == 1 and "invalid token" in bad.stderr


def test_secret_file_and_no_expiry(cli, tmp_path):
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    token = mint(cli, "--secret-file", str(f), "--ttl", "0")
    claims = json.loads(_b64(token.split(".")[1]))
    assert "exp" not in claims and claims["subscribe"] == [] and claims["publish"] == []
    v = cli.run("verify", token, "--secret", SECRET)
    assert v.returncode == 0 and v.stdout.endswith("valid: no expiry\n"), v.stderr


@pytest.mark.parametrize("args,needle", [
    (["token", "--sub", "a"], "exactly one of --secret"),
    (["token", "--secret", "x", "--key", "/nonexistent"], "exactly one of --secret"),
    (["token", "--secret", "x", "--ttl", "soon"], "--ttl"),
    (["token", "--secret", "x", "--ttl", "-5"], "--ttl"),
    (["token", "--secret", "x", "--subscribe", "a..b"], "invalid pattern 'a..b'"),
    (["token", "--secret", ""], "the secret is empty"),
    (["token", "--key", "/nonexistent/key.pem"], "cannot read"),
    (["token", "--secret", "x", "extra"], "unexpected argument"),
    (["verify", "--secret", "x"], "expected one TOKEN"),
    (["verify", "a.b.c", "--bogus"], "unknown option"),
])
def test_usage_errors_exit_2(cli, args, needle):
    r = cli.run(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert needle in r.stderr and r.stdout == ""


def test_malformed_token_exits_1(cli):
    r = cli.run("verify", "not-a-token", "--secret", SECRET)
    assert r.returncode == 1 and "invalid token" in r.stderr


def test_help_documents_token_and_verify(cli):
    text = cli.run("--help").stdout
    for needle in ("token [--secret S|--secret-file F|--key FILE]", "verify TOKEN",
                   "--ttl", "--subscribe", "ES256"):
        assert needle in text
