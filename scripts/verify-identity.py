#!/usr/bin/env python3
"""Verifies a tidepool identity token the way a third-party app would: with only the
server's published key set (/.well-known/jwks.json), no tidepool code and no secret.

usage: verify-identity.py JWKS_FILE TOKEN ISSUER AUDIENCE [NOW_UNIX_SECONDS]

Prints the token's claims as JSON and exits 0 when the token is valid; prints why not
and exits 1 otherwise.
"""
import base64
import json
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LEEWAY = 60


def b64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def fail(why):
    print(why)
    sys.exit(1)


def main():
    jwks_file, token, issuer, audience = sys.argv[1:5]
    now = int(sys.argv[5]) if len(sys.argv) > 5 else int(time.time())
    with open(jwks_file, encoding="utf-8") as f:
        keys = json.load(f)["keys"]
    parts = token.split(".")
    if len(parts) != 3:
        fail("malformed")
    header = json.loads(b64url(parts[0]))
    if header.get("alg") != "EdDSA":
        fail("unexpected alg %r" % header.get("alg"))
    key = next((k for k in keys if k.get("kid") == header.get("kid")), None)
    if key is None or key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
        fail("no Ed25519 key with kid %r" % header.get("kid"))
    public = Ed25519PublicKey.from_public_bytes(b64url(key["x"]))
    try:
        public.verify(b64url(parts[2]), (parts[0] + "." + parts[1]).encode("ascii"))
    except InvalidSignature:
        fail("bad signature")
    claims = json.loads(b64url(parts[1]))
    if claims.get("token_use") != "tidepool_identity":
        fail("not an identity token")
    if claims.get("iss") != issuer:
        fail("wrong issuer")
    if claims.get("aud") != audience:
        fail("wrong audience")
    if now > claims["exp"] + LEEWAY:
        fail("expired")
    if now + LEEWAY < claims["nbf"]:
        fail("not valid yet")
    print(json.dumps(claims))


if __name__ == "__main__":
    main()
