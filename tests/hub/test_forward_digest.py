from __future__ import annotations

import pytest

from hub.forward.digest import DigestChallenge, authorization_header, digest_response, parse_authorization


def test_rfc2617_example_vector() -> None:
    # RFC 2617 §3.5: the "Mufasa" example; any slip in the KD/H arithmetic changes it.
    challenge = DigestChallenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == "auth" and challenge.algorithm == "MD5"
    response = digest_response(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle Of Life", nc=1, cnonce="0a4f113b",
    )  # fmt: skip
    assert response == "6629fae49393a05397450978507c4ef1"


def test_authorization_header_round_trips() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n1", qop="auth", opaque="o", algorithm=MD5')
    header = authorization_header(challenge, method="POST", uri="/VIID/System/Register",
                                  username="u", password="p", nc=2, cnonce="c")  # fmt: skip
    params = parse_authorization(header)
    assert params["nc"] == "00000002" and params["opaque"] == "o" and params["qop"] == "auth"
    assert params["uri"] == "/VIID/System/Register"
    assert "p" not in params.values()  # the password itself never travels


@pytest.mark.parametrize(
    "header",
    ['Basic realm="x"', 'Digest nonce="n"', 'Digest realm="r", nonce="n", qop="auth-int"',
     'Digest realm="r", nonce="n", algorithm=SHA-512-256'],
)  # fmt: skip
def test_unusable_challenges_are_refused(header: str) -> None:
    with pytest.raises(ValueError):
        DigestChallenge.parse(header)
