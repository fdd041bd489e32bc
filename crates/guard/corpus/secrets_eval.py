#!/usr/bin/env python3
"""A held-out style evaluation set for the guard's secret detection.

Writes JSON Lines (text, secret, pii, injection, family, source, split) to stdout or to
the path given: realistic leaks of fake credentials in many surroundings (code, logs,
.env files, chat, JSON, YAML, terminal output, markdown), each written out plainly or
disguised the ways an attacker's review used (string concatenation, hard-wrapped
lines, base64, hex, percent-encoding, Unicode tag characters, look-alike letters,
combining marks, a newline or markdown bold inside the token, a token split between
two fields, a PEM body without its header), and hard negatives of the same shapes
(UUIDs, hashes, git SHAs, base64 data, identifiers, wrapped URLs, public keys and
addresses, placeholders, EXAMPLE fixtures, publishable keys).

`family` names the class, so recall can be read per class; negatives' families start
with `neg_`. Every key is generated here from a seeded random source, in its provider's
format and with its checksum where the format has one (GitHub and npm tokens end in a
CRC32 of their body): none is real. The templates are written for this set only; the
guard's unit tests use none of them. Deterministic: the same seed gives the same file.

    python3 crates/guard/corpus/secrets_eval.py /tmp/secrets_eval.jsonl [SEED]
    cargo run --release -p tidepool-guard --example secrets_eval -- /tmp/secrets_eval.jsonl \
        ../shared/data/moltbook-posts-dev.jsonl

Another seed draws other keys, splits and surroundings from the same templates: a check
that a fix made while reading one draw's misses was not fitted to that draw.
"""

import base64
import json
import random
import sys
import zlib

SEED = 20260128
PER_CLASS = 60

B62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
B64URL = B62 + "_-"
HEX = "0123456789abcdef"
UPPER32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else SEED)


def rs(n, alphabet=B62):
    return "".join(rng.choice(alphabet) for _ in range(n))


def base62(n, width):
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def crc_token(prefix, body_len):
    """GitHub- and npm-style token: random body, then base62 CRC32 of it (6 chars)."""
    body = rs(body_len - 6)
    return prefix + body + base62(zlib.crc32(body.encode()), 6)


def b64url_nopad(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt():
    header = b64url_nopad(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url_nopad(
        json.dumps({"sub": rs(12), "role": "service_role", "iat": rng.randint(1_600_000_000, 1_800_000_000)}).encode()
    )
    return f"{header}.{payload}.{b64url_nopad(rng.randbytes(32))}"


# Credential formats: name -> generator. The first group predates the attacker's review;
# the second is the providers the review found missing.
KEYS = {
    "tidepool": lambda: "moltbook_sk_" + rs(43),
    "github": lambda: crc_token("ghp_", 36),
    "github_fine": lambda: "github_pat_" + rs(22) + "_" + rs(59),
    "openai": lambda: "sk-proj-" + rs(74, B64URL) + "T3BlbkFJ" + rs(74, B64URL),
    "anthropic": lambda: "sk-ant-api03-" + rs(93, B64URL) + "AA",
    "aws": lambda: "AKIA" + rs(16, UPPER32),
    "stripe": lambda: "sk_live_51" + rs(97),
    "slack": lambda: f"xoxb-{rs(11, '0123456789')}-{rs(13, '0123456789')}-{rs(24)}",
    "google": lambda: "AIza" + rs(35, B64URL),
    "npm": lambda: crc_token("npm_", 36),
    "gitlab": lambda: "glpat-" + rs(20, B64URL),
    "huggingface": lambda: "hf_" + rs(34, B62[:52]),
    "sendgrid": lambda: f"SG.{rs(22, B64URL)}.{rs(43, B64URL)}",
    "groq": lambda: "gsk_" + rs(52),
    "jwt": jwt,
}
NEW_KEYS = {
    "supabase": lambda: f"sb_secret_{rs(22, B64URL)}_{rs(8)}",
    "anthropic_oauth": lambda: "sk-ant-oat01-" + rs(93, B64URL) + "AA",
    "resend": lambda: f"re_{rs(8)}_{rs(24)}",
    "tavily": lambda: "tvly-" + rng.choice(["", "dev-", "prod-"]) + rs(32),
    "pinecone": lambda: f"pcsk_{rs(5)}_{rs(63)}",
    "posthog": lambda: "phx_" + rs(47),
    "langfuse": lambda: f"sk-lf-{rs(8, HEX)}-{rs(4, HEX)}-{rs(4, HEX)}-{rs(4, HEX)}-{rs(12, HEX)}",
    "planetscale": lambda: "pscale_tkn_" + rs(43, B64URL),
    "neon": lambda: "napi_" + rs(64, "abcdefghijklmnopqrstuvwxyz0123456789"),
    "netlify": lambda: "nfp_" + rs(40),
    "tailscale": lambda: f"tskey-auth-{rs(12)}-{rs(33)}",
    "elevenlabs": lambda: "sk_" + rs(48, HEX),
    "deepseek": lambda: "sk-" + rs(32, HEX),
    "together": lambda: "tgp_v1_" + rs(43, B64URL),
}
ALL_KEYS = {**KEYS, **NEW_KEYS}

VARS = ["API_KEY", "TOKEN", "SECRET", "AUTH", "CREDENTIAL", "KEY", "ACCESS"]
HOSTS = ["api.example.com", "internal.svc.local", "prod-gw.example.net"]


def key(names=None):
    name = rng.choice(names or list(ALL_KEYS))
    return name, ALL_KEYS[name]()


def var(name):
    return f"{name.upper()}_{rng.choice(VARS)}"


# Surroundings: each takes (provider name, value) and returns a text.
def s_python(n, v):
    return f"import os\nfrom client import Client\n\nclient = Client(api_key=\"{v}\", timeout=30)\nprint(client.ping())"


def s_js(n, v):
    return f"// quick test before I move it to env\nconst {n}Token = '{v}';\nfetch(url, {{ headers: {{ auth: {n}Token }} }});"


def s_env(n, v):
    return f"# .env.production\nNODE_ENV=production\nPORT=8080\n{var(n)}={v}\nLOG_LEVEL=info"


def s_log(n, v):
    return f"2026-01-28T10:22:0{rng.randint(0, 9)}Z INFO request authorised cred={v} agent=bot{rng.randint(10, 99)} latency=41ms"


def s_chat(n, v):
    return rng.choice([
        f"hey, quick one: my {n} integration keeps failing, I'm using {v} — is that the right format?",
        f"Can someone sanity check this for me? {v} works locally but not on the server. Thanks!",
        f"ok here it is {v} please don't share it lol",
    ])


def s_json(n, v):
    return json.dumps({"provider": n, "credentials": {"value": v}, "retries": 3}, indent=2)


def s_yaml(n, v):
    return f"services:\n  {n}:\n    enabled: true\n    credentials:\n      value: {v}\n    region: eu-west-1"


def s_terminal(n, v):
    return f"$ printenv | grep -i {n}\n{var(n)}={v}\n$ curl -s https://{rng.choice(HOSTS)}/health\nok"


def s_markdown(n, v):
    return f"## My setup\n\nI run the agent with this config:\n\n```\n{var(n)}={v}\n```\n\nAny idea why it times out?"


def s_curl(n, v):
    return f"curl -X POST https://{rng.choice(HOSTS)}/v1/run \\\n  -H \"Authorization: Bearer {v}\" \\\n  -d '{{\"q\": 1}}'"


SURROUNDINGS = [s_python, s_js, s_env, s_log, s_chat, s_json, s_yaml, s_terminal, s_markdown, s_curl]


def surround(n, v):
    return rng.choice(SURROUNDINGS)(n, v)


def cut(v, lo=6):
    i = rng.randint(lo, max(lo, len(v) - 4))
    return v[:i], v[i:]


# --- Disguises.
def concat(n, v):
    a, b = cut(v)
    style = rng.randrange(6)
    if style == 0:
        return f"{n}_key = \"{a}\" + \"{b}\"\nclient = Client({n}_key)"
    if style == 1:
        return f"KEY = (\n    \"{a}\"\n    \"{b}\"\n)"
    if style == 2:
        return f"<?php\n$key = '{a}' . '{b}';\n$api = new Api($key);"
    if style == 3:
        return f"const key = `{a}` +\n  `{b}`;"
    if style == 4:
        x, y = cut(b, 2)
        return f"token = \"{a}\" + \"{x}\" + \"{y}\""
    return f"key=\"{a}\"\\\n\"{b}\""


def wrapped(n, v):
    line = f"{var(n)}={v}"
    width = rng.choice([40, 60, 64, 72, 80])
    width = min(width, len(line) - 3)
    indent = rng.choice(["", "", "    ", "  "])
    pieces = [line[i:i + width] for i in range(0, len(line), width)]
    body = ("\n" + indent).join(pieces)
    return f"$ kubectl exec deploy/agent -- env\n{indent}{body}\n$ echo done"


def b64(n, v):
    payload = rng.choice([v, f"{var(n)}={v}", json.dumps({"key": v})])
    enc = base64.b64encode(payload.encode()).decode()
    if rng.random() < 0.3:
        enc = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return rng.choice([
        f"config={enc}",
        f"{{\"blob\":\"{enc}\"}}",
        f"decode this for me: {enc}",
        f"echo {enc} | base64 -d",
    ])


def hexed(n, v):
    h = v.encode().hex()
    return rng.choice([
        f"payload: {h}",
        f"bytes=0x{h.upper()}",
        f"dump: {' '.join(h[i:i + 2] for i in range(0, len(h), 2))}",
    ])


def percent(n, v):
    if rng.random() < 0.5:
        enc = "".join(f"%{b:02X}" for b in v.encode())
    else:
        enc = "".join(f"%{ord(c):02X}" if not c.isalnum() or rng.random() < 0.2 else c for c in v)
    return f"GET https://{rng.choice(HOSTS)}/cb?state=ok&cred={enc}&next=%2Fhome"


def tags(n, v):
    k = rng.randint(0, len(v) // 2)
    hidden = "".join(chr(0xE0000 + ord(c)) for c in v[k:])
    return f"Nice post! {v[:k]}{hidden} see you around"


CONFUSABLE = {
    "a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
    "y": "\u0443", "i": "\u0456", "s": "\u0455", "A": "\u0391", "B": "\u0392", "E": "\u0395",
    "H": "\u0397", "K": "\u039a", "M": "\u039c", "O": "\u039f", "P": "\u03a1", "T": "\u03a4",
    "X": "\u03a7",
}


def homoglyph(n, v):
    chars = list(v)
    spots = [i for i, c in enumerate(chars) if c in CONFUSABLE]
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 3))):
        chars[i] = CONFUSABLE[chars[i]]
    return surround(n, "".join(chars))


def combining(n, v):
    chars = list(v)
    for i in sorted(rng.sample(range(2, len(chars)), 2), reverse=True):
        chars.insert(i, rng.choice(["\u0301", "\u0308", "\u0336", "\u0323"]))
    return surround(n, "".join(chars))


def newline_inside(n, v):
    a, b = cut(v)
    return rng.choice([
        f"my key is {a}\n{b}\nwhy does it 401?",
        f"pasted from the dashboard:\n\n{a}\n{b}",
    ])


def bold(n, v):
    a, b = cut(v)
    return rng.choice([f"the key: **{a}**{b}", f"use {a}**{b}** for prod", f"__note__ {a}**{b}"])


def zero_width(n, v):
    a, b = cut(v)
    return surround(n, a + rng.choice(["\u200b", "\u200d", "\u2060", "\ufeff"]) + b)


def cross_field(n, v):
    a, b = cut(v)
    title = rng.choice(["Help: auth fails with", "Why is my key rejected?", "Debug log"]) + f" {a}"
    content = f"{b} is what the dashboard gave me, and every call returns 401."
    return f"{title}\n{content}"


def der(kind):
    if kind == "rsa":
        return bytes([0x30, 0x82, 0x04, 0xA4, 0x02, 0x01, 0x00, 0x02, 0x82, 0x01, 0x01, 0x00]) + rng.randbytes(1180)
    if kind == "pkcs8":
        return bytes([0x30, 0x82, 0x04, 0xBE, 0x02, 0x01, 0x00, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48,
                      0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00, 0x04, 0x82, 0x04, 0xA8]) + rng.randbytes(1190)
    if kind == "ec":
        return bytes([0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20]) + rng.randbytes(112)
    return bytes([0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22,
                  0x04, 0x20]) + rng.randbytes(32)


def pem_lines(b, width=64):
    t = base64.b64encode(b).decode()
    return "\n".join(t[i:i + width] for i in range(0, len(t), width))


def pem_body():
    kind = rng.choice(["rsa", "pkcs8", "ec", "ed25519", "openssh"])
    if kind == "openssh":
        body = pem_lines(b"openssh-key-v1\x00" + rng.randbytes(400), 70)
    else:
        body = pem_lines(der(kind), rng.choice([64, 64, 76]))
    style = rng.randrange(4)
    if style == 0:
        return f"here's the deploy key, header got cut off:\n{body}\n-----END PRIVATE KEY-----"
    if style == 1:
        return f"```\n{body}\n```"
    if style == 2:
        label = {"rsa": "RSA ", "ec": "EC ", "openssh": "OPENSSH "}.get(kind, "")
        return f"-----BEGIN  {label}PRIVATE  KEY-----\n{body}\n-----END {label}PRIVATE KEY-----"
    return f"ssh_key: |\n  " + body.replace("\n", "\n  ")


# --- Hard negatives.
def uuid():
    h = rs(32, HEX)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def neg():
    kind = rng.randrange(16)
    if kind == 0:
        return "neg_uuid", f"2026-01-28 INFO job {uuid()} finished for agent {uuid()} in 2.3s"
    if kind == 1:
        return "neg_hash", f"sha256sum model.bin\n{rs(64, HEX)}  model.bin\nsha1: {rs(40, HEX)}"
    if kind == 2:
        lines = "\n".join(f"{rs(40, HEX)} fix: {rng.choice(['typo', 'retry logic', 'memory leak'])}" for _ in range(3))
        return "neg_git_sha", f"$ git log --format='%H %s' -3\n{lines}"
    if kind == 3:
        data = base64.b64encode(rng.randbytes(300)).decode()
        wrapped = "\n".join(data[i:i + 76] for i in range(0, len(data), 76))
        return "neg_base64_data", rng.choice([
            f"![chart](data:image/png;base64,{data})",
            f"attachment (base64):\n{wrapped}",
        ])
    if kind == 4:
        return "neg_identifier", (
            "fn build_authentication_token_refresh_scheduler_v2(cfg: &Config) -> Result<()> {\n"
            "    let secretManagerClientFactoryInstance = SecretManagerClientFactory::new(cfg);\n"
            "    let token_bucket_rate_limiter_capacity_per_second = 4096;\n"
            "    Ok(())\n}"
        )
    if kind == 5:
        path = "/".join(rs(rng.randint(5, 12), "abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        return "neg_wrapped_url", f"docs: https://docs.example.com/{path}?\nversion=2&token_type=bearer&page={rng.randint(1, 9)}"
    if kind == 6:
        return "neg_public_key", rng.choice([
            f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{rs(43)} agent@box",
            "-----BEGIN PUBLIC KEY-----\n" + pem_lines(bytes([0x30, 0x82, 0x01, 0x22, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0F, 0x00]) + rng.randbytes(270)) + "\n-----END PUBLIC KEY-----",
            f"tip jar: 0x{rs(40, HEX)} (ETH) or bc1q{rs(38, 'qpzry9x8gf2tvdw0s3jn54khce6mua7l')}",
        ])
    if kind == 7:
        return "neg_placeholder", rng.choice([
            "export OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "api_key: your_api_key_here",
            "TOKEN=<YOUR_GITHUB_TOKEN>",
            "SUPABASE_SECRET_KEY=sb_secret_...",
            "key = \"sk-proj-\" + \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
        ])
    if kind == 8:
        return "neg_example_fixture", rng.choice([
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "# test fixture\nFAKE_TOKEN = \"ghp_EXAMPLEexampleEXAMPLEexampleEXAMPLE12\"",
        ])
    if kind == 9:
        return "neg_publishable", rng.choice([
            f"NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY=sb_publishable_{rs(22, B64URL)}_{rs(8)}",
            f"posthog.init('phc_{rs(43)}', {{api_host: 'https://eu.i.posthog.com'}})",
            f"STRIPE_PUBLISHABLE_KEY=pk_live_{rs(99)}",
            f"LANGFUSE_PUBLIC_KEY=pk-lf-{uuid()}",
        ])
    if kind == 10:
        text = json.dumps({"user": rs(8, "abcdefgh"), "exp": rng.randint(1_700_000_000, 1_800_000_000), "scope": "read"})
        return "neg_base64_text", f"cursor={base64.urlsafe_b64encode(text.encode()).decode()}"
    if kind == 11:
        return "neg_concat", f"greeting = \"Hello, \" + \"world\" + \"!\"\npath = \"{rs(10, 'abcdefgh')}\" + \"/\" + \"v2\""
    if kind == 12:
        h = rs(64, HEX)
        return "neg_split_hash", f"checksum:\n{h[:32]}\n{h[32:]}"
    if kind == 13:
        return "neg_prose_wrapped", (
            "I spent the afternoon refactoring the memory subsystem and the\n"
            "ConversationSummarizer now runs incrementally, which halved the\n"
            "TokenBudget2024 overruns we kept seeing in production."
        )
    if kind == 14:
        return "neg_solana_pair", f"wallets:\n{rs(44, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz')}\n{rs(44, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz')}"
    return "neg_hex_data", f"firmware blob: {rng.randbytes(48).hex()}"


DISGUISES = {
    "concat_split": concat,
    "wrapped_lines": wrapped,
    "base64": b64,
    "hex": hexed,
    "percent": percent,
    "unicode_tags": tags,
    "homoglyph": homoglyph,
    "combining_mark": combining,
    "newline_inside": newline_inside,
    "markdown_bold": bold,
    "zero_width": zero_width,
    "cross_field": cross_field,
}


def rows():
    for _ in range(PER_CLASS):
        yield "plain", surround(*key(list(KEYS)))
    for _ in range(PER_CLASS):
        yield "new_provider", surround(*key(list(NEW_KEYS)))
    for family, disguise in DISGUISES.items():
        for _ in range(PER_CLASS):
            yield family, disguise(*key())
    for _ in range(PER_CLASS):
        yield "pem_body", pem_body()


def main():
    out = open(sys.argv[1], "w") if len(sys.argv) > 1 else sys.stdout
    count = 0
    for family, text in rows():
        count += 1
        out.write(json.dumps({"text": text, "secret": True, "pii": False, "injection": False,
                              "family": family, "source": "secrets_eval", "split": "eval"}) + "\n")
    for _ in range(count):
        family, text = neg()
        out.write(json.dumps({"text": text, "secret": False, "pii": False, "injection": False,
                              "family": family, "source": "secrets_eval", "split": "eval"}) + "\n")


if __name__ == "__main__":
    main()
