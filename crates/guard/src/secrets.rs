//! Credential detection.
//!
//! Each rule is a pattern for one credential format plus a check that the match is a real
//! credential and not a placeholder (`sk-xxxx`, `YOUR_API_KEY`, `AKIA...EXAMPLE`), a hash,
//! a UUID or a public address. Formats with a checksum are verified (BIP39 seed phrases,
//! Base58Check keys, JWT structure); generic `password=` / `secret:` assignments need
//! entropy and a credential-like value. Matching runs on the `clean` view, so zero-width
//! characters and fullwidth look-alikes inside a key do not hide it.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use base64::Engine;
use regex::Regex;

use crate::spans::Taken;

/// A credential found in a text (byte offsets into the text scanned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    pub rule: &'static str,
    pub start: usize,
    pub end: usize,
    /// The credential as matched, when it differs from `text[start..end]`: found only once
    /// a split was rejoined or a disguise undone (see [`rejoin`]). Whoever must act on the
    /// credential itself (revoke a key) needs this, not the disguised text.
    pub value: Option<String>,
}

#[derive(Clone, Copy)]
enum Check {
    /// Only the placeholder guard.
    Plain,
    /// The named capture `v` must look random: at least this many bits of entropy per char.
    Entropy(f64),
    /// A password-ish value: not a placeholder, not a plain word.
    Password,
    Jwt,
    Base58Checksum,
    SolanaKey,
    DbUrl,
    /// Base64 of `user:password` with a real-looking password.
    BasicAuth,
    /// Base64 of a DER private key (a PEM body without its header line): the structure a
    /// private key starts with, which public keys and certificates do not share.
    DerPrivateKey,
}

struct Rule {
    name: &'static str,
    pattern: &'static str,
    check: Check,
}

const fn rule(name: &'static str, pattern: &'static str, check: Check) -> Rule {
    Rule {
        name,
        pattern,
        check,
    }
}

/// The credential formats, most specific first. `(?P<v>...)` marks the secret part where
/// the match also holds context (a keyword, a URL's user name).
const RULES: &[Rule] = &[
    // tidepool's own keys and claim tokens (and the open-source server's key format).
    rule(
        "tidepool_api_key",
        r"\bmoltbook_sk_[A-Za-z0-9_-]{16,}",
        Check::Plain,
    ),
    rule(
        "tidepool_claim_token",
        r"\bmoltbook_claim_[A-Za-z0-9_-]{16,}",
        Check::Plain,
    ),
    rule(
        "moltbook_oss_api_key",
        r"\bmoltbook_[0-9a-f]{64}\b",
        Check::Plain,
    ),
    // Cloud.
    rule(
        "aws_access_key_id",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b",
        Check::Plain,
    ),
    rule(
        "aws_secret_access_key",
        r#"(?i)aws.{0,20}?(?:secret|private).{0,20}?[=:"'\s]\s*["']?(?P<v>[A-Za-z0-9/+]{40})\b"#,
        Check::Entropy(3.5),
    ),
    rule("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b", Check::Plain),
    rule(
        "google_oauth_client_secret",
        r"\bGOCSPX-[A-Za-z0-9_-]{28}\b",
        Check::Plain,
    ),
    rule(
        "google_oauth_access_token",
        r"\bya29\.[0-9A-Za-z_-]{30,}",
        Check::Plain,
    ),
    rule(
        "azure_storage_account_key",
        r"(?i)AccountKey=(?P<v>[A-Za-z0-9+/]{86}==)",
        Check::Plain,
    ),
    rule(
        "azure_sas_token",
        r"(?i)\bsig=[A-Za-z0-9%+/]{43,}(?:%3D|=)",
        Check::Plain,
    ),
    rule(
        "digitalocean_token",
        r"\bdo[opr]_v1_[a-f0-9]{64}\b",
        Check::Plain,
    ),
    rule(
        "heroku_api_key",
        r"\bHRKU-[A-Za-z0-9_-]{60}\b",
        Check::Plain,
    ),
    rule(
        "heroku_api_key_uuid",
        r"(?i)heroku.{0,30}?(?:key|token|secret).{0,10}?(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
        Check::Plain,
    ),
    rule(
        "alibaba_access_key_id",
        r"\bLTAI[A-Za-z0-9]{20}\b",
        Check::Plain,
    ),
    rule("vault_token", r"\bhv[sb]\.[A-Za-z0-9_-]{24,}", Check::Plain),
    rule(
        "terraform_cloud_token",
        r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}",
        Check::Plain,
    ),
    rule(
        "doppler_token",
        r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
        Check::Plain,
    ),
    rule(
        "cloudflare_api_token",
        r#"(?i)cloudflare.{0,25}?(?:token|key).{0,10}?["'\s:=]+(?P<v>[A-Za-z0-9_-]{40})\b"#,
        Check::Entropy(3.5),
    ),
    // Version control and package registries.
    rule(
        "github_token",
        r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
        Check::Plain,
    ),
    rule(
        "github_fine_grained_pat",
        r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b",
        Check::Plain,
    ),
    rule(
        "gitlab_token",
        r"\bgl(?:pat|dt|ptt|rt|oas|cbt|imt|agent)-[A-Za-z0-9_-]{20,}",
        Check::Plain,
    ),
    rule(
        "bitbucket_app_password",
        r"\bATBB[A-Za-z0-9_=.-]{28,}",
        Check::Plain,
    ),
    rule(
        "atlassian_api_token",
        r"\bATATT3[A-Za-z0-9_=-]{100,}",
        Check::Plain,
    ),
    rule("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", Check::Plain),
    rule(
        "pypi_token",
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
        Check::Plain,
    ),
    rule(
        "rubygems_api_key",
        r"\brubygems_[a-f0-9]{48}\b",
        Check::Plain,
    ),
    rule("nuget_api_key", r"\boy2[a-z0-9]{43}\b", Check::Plain),
    rule(
        "dockerhub_token",
        r"\bdckr_pat_[A-Za-z0-9_-]{27,}",
        Check::Plain,
    ),
    rule(
        "crates_io_token",
        r"\bcio[A-Za-z0-9]{32}\b",
        Check::Entropy(3.5),
    ),
    // AI providers.
    rule(
        "anthropic_api_key",
        r"\bsk-ant-(?:api|admin|sid|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{32,}",
        Check::Plain,
    ),
    rule(
        "openrouter_api_key",
        r"\bsk-or-v1-[a-f0-9]{64}\b",
        Check::Plain,
    ),
    rule(
        "openai_api_key",
        r"\bsk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{32,}",
        Check::Plain,
    ),
    rule(
        "openai_api_key_legacy",
        r"\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b",
        Check::Plain,
    ),
    rule(
        "openai_style_api_key",
        r"\bsk-[A-Za-z0-9]{40,64}\b",
        Check::Entropy(4.0),
    ),
    rule("huggingface_token", r"\bhf_[A-Za-z]{34,40}\b", Check::Plain),
    rule(
        "replicate_api_token",
        r"\br8_[A-Za-z0-9]{37}\b",
        Check::Plain,
    ),
    rule("groq_api_key", r"\bgsk_[A-Za-z0-9]{48,56}\b", Check::Plain),
    rule(
        "perplexity_api_key",
        r"\bpplx-[A-Za-z0-9]{48}\b",
        Check::Plain,
    ),
    rule("xai_api_key", r"\bxai-[A-Za-z0-9]{70,90}\b", Check::Plain),
    rule(
        "fireworks_api_key",
        r"\bfw_[A-Za-z0-9]{24,}\b",
        Check::Entropy(3.5),
    ),
    rule(
        "langsmith_api_key",
        r"\blsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}\b",
        Check::Plain,
    ),
    rule(
        "ai_provider_key_in_context",
        r#"(?i)(?:mistral|cohere|together|deepseek|gemini|voyage|anyscale|elevenlabs|deepgram|assemblyai|pinecone|weaviate)[ _-]?(?:ai[ _-]?)?(?:api[ _-]?)?(?:key|token|secret)["']?\s*(?:[:=]|is)\s*["']?(?P<v>[A-Za-z0-9_-]{24,})"#,
        Check::Entropy(3.5),
    ),
    // Payments.
    rule(
        "stripe_secret_key",
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,}\b",
        Check::Plain,
    ),
    rule(
        "stripe_webhook_secret",
        r"\bwhsec_[A-Za-z0-9]{32,}\b",
        Check::Plain,
    ),
    rule(
        "square_access_token",
        r"\b(?:sq0atp|sq0csp)-[A-Za-z0-9_-]{22,43}\b",
        Check::Plain,
    ),
    rule(
        "square_production_token",
        r"\bEAAA[A-Za-z0-9_-]{60}\b",
        Check::Plain,
    ),
    rule(
        "braintree_access_token",
        r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}",
        Check::Plain,
    ),
    rule(
        "paypal_client_secret",
        r#"(?i)paypal.{0,20}?secret.{0,10}?["'\s:=]+(?P<v>E[A-Za-z0-9_-]{79})\b"#,
        Check::Plain,
    ),
    rule(
        "shopify_token",
        r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
        Check::Plain,
    ),
    rule(
        "coinbase_api_secret",
        r#"(?i)coinbase.{0,20}?secret.{0,10}?["'\s:=]+(?P<v>[A-Za-z0-9+/=]{40,})"#,
        Check::Entropy(3.5),
    ),
    // Messaging and e-mail.
    rule(
        "slack_token",
        r"\bxox[abposr]-(?:[0-9]+-)+[A-Za-z0-9]{10,}",
        Check::Plain,
    ),
    rule(
        "slack_app_token",
        r"\bxapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-f0-9]{32,}",
        Check::Plain,
    ),
    rule(
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]{16,}",
        Check::Plain,
    ),
    rule(
        "discord_webhook",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{15,22}/[A-Za-z0-9_-]{40,}",
        Check::Plain,
    ),
    rule(
        "discord_bot_token",
        r"\b[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b",
        Check::Plain,
    ),
    rule(
        "telegram_bot_token",
        r"\b[0-9]{8,10}:AA[0-9A-Za-z_-]{33}\b",
        Check::Plain,
    ),
    rule(
        "teams_webhook",
        r"https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/-]{50,}",
        Check::Plain,
    ),
    rule("twilio_api_key", r"\bSK[0-9a-f]{32}\b", Check::Entropy(3.0)),
    rule(
        "twilio_auth_token",
        r#"(?i)twilio.{0,30}?(?:auth|token|secret).{0,10}?["'\s:=]+(?P<v>[0-9a-f]{32})\b"#,
        Check::Plain,
    ),
    rule(
        "sendgrid_api_key",
        r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
        Check::Plain,
    ),
    rule(
        "mailgun_api_key",
        r"\bkey-[0-9a-f]{32}\b",
        Check::Entropy(3.0),
    ),
    rule(
        "mailchimp_api_key",
        r"\b[0-9a-f]{32}-us[0-9]{1,2}\b",
        Check::Entropy(3.0),
    ),
    rule(
        "postmark_token",
        r#"(?i)postmark.{0,20}?(?:token|key).{0,10}?["'\s:=]+(?P<v>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"#,
        Check::Plain,
    ),
    // SaaS.
    rule(
        "linear_api_key",
        r"\blin_(?:api|oauth)_[A-Za-z0-9]{40}\b",
        Check::Plain,
    ),
    rule(
        "notion_token",
        r"\b(?:secret_[A-Za-z0-9]{43}|ntn_[A-Za-z0-9]{40,50})\b",
        Check::Plain,
    ),
    rule(
        "airtable_pat",
        r"\bpat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b",
        Check::Plain,
    ),
    rule(
        "figma_token",
        r"\bfig[dou]_[A-Za-z0-9_-]{40,}",
        Check::Plain,
    ),
    rule(
        "postman_api_key",
        r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b",
        Check::Plain,
    ),
    rule(
        "sentry_token",
        r"\bsntr[ysu]_[A-Za-z0-9_=+/-]{40,}",
        Check::Plain,
    ),
    rule(
        "datadog_api_key",
        r#"(?i)(?:datadog|dd)[_-]?(?:api|app)[_-]?key.{0,5}?["'\s:=]+(?P<v>[a-f0-9]{32,40})\b"#,
        Check::Plain,
    ),
    rule(
        "new_relic_key",
        r"\bNR(?:AK|AA|II)-[A-Z0-9]{27}\b",
        Check::Plain,
    ),
    rule(
        "grafana_token",
        r"\bglsa_[A-Za-z0-9]{32}_[a-f0-9]{8}\b",
        Check::Plain,
    ),
    rule(
        "supabase_service_key",
        r"\bsbp_[a-f0-9]{40}\b",
        Check::Plain,
    ),
    rule(
        "vercel_token",
        r#"(?i)vercel.{0,20}?token.{0,10}?["'\s:=]+(?P<v>[A-Za-z0-9]{24})\b"#,
        Check::Entropy(3.5),
    ),
    rule(
        "age_secret_key",
        r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b",
        Check::Plain,
    ),
    rule(
        "mapbox_secret_token",
        r"\bsk\.eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}",
        Check::Plain,
    ),
    rule(
        "brevo_api_key",
        r"\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\b",
        Check::Plain,
    ),
    rule(
        "contentful_token",
        r"\bCFPAT-[A-Za-z0-9_-]{43}\b",
        Check::Plain,
    ),
    rule("pulumi_token", r"\bpul-[a-f0-9]{40}\b", Check::Plain),
    rule(
        "databricks_token",
        r"\bdapi[a-f0-9]{32}(?:-[0-9])?\b",
        Check::Plain,
    ),
    rule("sonarqube_token", r"\bsq[upa]_[a-f0-9]{40}\b", Check::Plain),
    rule("buildkite_token", r"\bbkua_[a-f0-9]{40}\b", Check::Plain),
    rule("dropbox_token", r"\bsl\.[A-Za-z0-9_-]{130,}", Check::Plain),
    rule(
        "facebook_access_token",
        r"\bEAA[B-Z][A-Za-z0-9]{80,}",
        Check::Plain,
    ),
    rule(
        "twitter_bearer_token",
        r"\bA{20,22}[A-Za-z0-9%]{30,}",
        Check::Plain,
    ),
    rule(
        "okta_api_token",
        r#"(?i)okta.{0,20}?(?:token|key).{0,10}?["'\s:=]+(?P<v>00[A-Za-z0-9_-]{40})\b"#,
        Check::Plain,
    ),
    rule(
        "fly_io_token",
        r"\b(?:fo1_[A-Za-z0-9_-]{43}|FlyV1 fm[12]_[A-Za-z0-9+/=_,-]{100,})",
        Check::Plain,
    ),
    rule(
        "azure_client_secret",
        r#"(?i)(?:azure|aad|entra|client)[ _-]?(?:client[ _-]?)?secret.{0,10}?["'\s:=]+(?P<v>[A-Za-z0-9_.-]{3,5}~[A-Za-z0-9_~.-]{30,40})"#,
        Check::Plain,
    ),
    rule(
        "basic_auth_header",
        r"(?i)\bauthorization:\s*basic\s+(?P<v>[A-Za-z0-9+/=]{8,})",
        Check::BasicAuth,
    ),
    // Providers whose key formats appeared after the first rules were written. Their
    // publishable counterparts (`sb_publishable_`, `phc_`, `pk-lf-`, `pk_live_`) are made
    // to be public and have no rule.
    rule(
        "supabase_secret_key",
        r"\bsb_secret_[A-Za-z0-9_-]{20,}",
        Check::Plain,
    ),
    rule(
        "resend_api_key",
        r"\bre_[A-Za-z0-9]{6,12}_[A-Za-z0-9]{20,32}\b",
        Check::Entropy(3.0),
    ),
    rule(
        "tavily_api_key",
        r"\btvly-(?:dev-|prod-)?[A-Za-z0-9]{32}\b",
        Check::Plain,
    ),
    rule(
        "firecrawl_api_key",
        r"\bfc-[a-f0-9]{32}\b",
        Check::Entropy(3.0),
    ),
    rule(
        "elevenlabs_api_key",
        r"\bsk_[a-f0-9]{48}\b",
        Check::Entropy(3.0),
    ),
    rule(
        "pinecone_api_key",
        r"\bpcsk_[A-Za-z0-9]{4,10}_[A-Za-z0-9]{30,}\b",
        Check::Plain,
    ),
    rule(
        "posthog_personal_api_key",
        r"\bphx_[A-Za-z0-9]{40,}\b",
        Check::Plain,
    ),
    rule(
        "langfuse_secret_key",
        r"\bsk-lf-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        Check::Plain,
    ),
    rule(
        "planetscale_token",
        r"\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.=-]{32,}",
        Check::Plain,
    ),
    rule(
        "neon_api_key",
        r"\bnapi_[a-z0-9]{60,72}\b",
        Check::Entropy(3.0),
    ),
    rule("render_api_key", r"\brnd_[A-Za-z0-9]{32}\b", Check::Plain),
    rule("netlify_token", r"\bnfp_[A-Za-z0-9]{36,}\b", Check::Plain),
    rule(
        "tailscale_key",
        r"\btskey-(?:api|auth|client|scim|webhook)-[A-Za-z0-9]{6,}-[A-Za-z0-9]{16,}\b",
        Check::Plain,
    ),
    rule(
        "onepassword_service_account_token",
        r"\bops_eyJ[A-Za-z0-9+/=_-]{100,}",
        Check::Plain,
    ),
    rule(
        "grafana_cloud_token",
        r"\bglc_[A-Za-z0-9+/=_-]{32,}",
        Check::Plain,
    ),
    rule(
        "sourcegraph_token",
        r"\bsgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}\b",
        Check::Plain,
    ),
    rule(
        "dynatrace_token",
        r"\bdt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}\b",
        Check::Plain,
    ),
    rule(
        "hubspot_private_app_token",
        r"\bpat-(?:na|eu|ap)[0-9]-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        Check::Plain,
    ),
    rule(
        "together_api_key",
        r"\btgp_v1_[A-Za-z0-9_-]{40,}",
        Check::Plain,
    ),
    rule(
        "google_oauth_refresh_token",
        r"\b1//0[A-Za-z0-9_-]{40,}",
        Check::Plain,
    ),
    rule(
        "cerebras_api_key",
        r"\bcsk-[a-z0-9]{40,}\b",
        Check::Entropy(3.5),
    ),
    rule("prefect_api_key", r"\bpnu_[A-Za-z0-9]{36}\b", Check::Plain),
    rule(
        "circleci_token",
        r"\bCCIPAT_[A-Za-z0-9]{20,24}_[a-f0-9]{40}\b",
        Check::Plain,
    ),
    rule(
        "tencent_secret_id",
        r"\bAKID[A-Za-z0-9]{32}\b",
        Check::Entropy(3.5),
    ),
    // OpenAI-compatible providers (DeepSeek and others) that issue `sk-` and 32 hex digits.
    rule(
        "sk_hex_api_key",
        r"\bsk-[a-f0-9]{32}\b",
        Check::Entropy(3.0),
    ),
    // Structured secrets.
    rule(
        "private_key_block",
        r"(?i)-{3,}\s*BEGIN\s+(?:[A-Z0-9]+\s+)*PRIVATE\s+KEY(?:\s+BLOCK)?\s*-{3,}",
        Check::Plain,
    ),
    // A PEM body pasted without its header line: base64 of DER whose first bytes say
    // private key, or the OpenSSH private key format's magic string.
    rule(
        "private_key_body",
        r"\bM[A-Za-z0-9+/]{59,}",
        Check::DerPrivateKey,
    ),
    rule(
        "openssh_private_key_body",
        r"\bb3BlbnNzaC1rZXktdjE[A-Za-z0-9+/]{40,}",
        Check::Plain,
    ),
    rule(
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        Check::Jwt,
    ),
    rule(
        "database_url_with_password",
        r"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|redis|rediss|amqps?|mssql|sqlserver|oracle|cockroachdb|clickhouse|ftp|sftp|smtp|ldap)://[^\s:/@]+:(?P<v>[^\s@/]+)@[^\s/]+",
        Check::DbUrl,
    ),
    rule(
        "url_basic_auth",
        r"\bhttps?://[^\s:/@]{1,64}:(?P<v>[^\s@/]{6,})@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        Check::DbUrl,
    ),
    // Crypto wallets.
    rule(
        "bitcoin_wif_private_key",
        r"\b[5KL][1-9A-HJ-NP-Za-km-z]{50,51}\b",
        Check::Base58Checksum,
    ),
    rule(
        "bip32_extended_private_key",
        r"\b[xyzt]prv[1-9A-HJ-NP-Za-km-z]{100,112}\b",
        Check::Base58Checksum,
    ),
    rule(
        "solana_private_key",
        r"\b[1-9A-HJ-NP-Za-km-z]{86,89}\b",
        Check::SolanaKey,
    ),
    rule(
        "ethereum_private_key",
        r#"(?i)(?:private[ _-]?key|priv[ _-]?key|privkey|secret[ _-]?key|wallet[ _-]?key|pk)\b.{0,12}?["'\s:=]+(?P<v>(?:0x)?[a-f0-9]{64})\b"#,
        Check::Entropy(3.0),
    ),
    // Generic assignments, last: every specific rule above wins an overlap.
    rule(
        "generic_password",
        r#"(?i)\b(?:[A-Za-z0-9]+[_-])*(?:password|passwd|passwort|contraseña|mot de passe|senha|pwd|passcode|pass)\b["']?\s*(?:[:=]|=>|:=|\bis\b|\bwas\b)\s*["'`]?(?P<v>[^\s"'`,;]{6,64})"#,
        Check::Password,
    ),
    rule(
        "generic_secret",
        r#"(?i)\b(?:[A-Za-z0-9]+[_-])*(?:api[_ -]?key|apikey|api[_ -]?secret|secret[_ -]?key|client[_ -]?secret|access[_ -]?token|auth[_ -]?token|bearer[_ -]?token|private[_ -]?token|app[_ -]?secret|secret|token)\b["']?\s*(?:[:=]|=>|:=|\bis\b)\s*["'`]?(?P<v>[A-Za-z0-9_\-+/=.~]{16,200})"#,
        Check::Entropy(3.2),
    ),
    rule(
        "authorization_bearer",
        r"(?i)\bauthorization:\s*bearer\s+(?P<v>[A-Za-z0-9_\-.=+/]{20,})",
        Check::Entropy(3.2),
    ),
];

struct Compiled {
    rules: Vec<(Regex, &'static Rule)>,
    /// Strings one of which each rule's matches contain (see
    /// [`crate::chain::required_strings`]), in one automaton: a rule none of whose strings
    /// occurs in a text is not run on it.
    required: AhoCorasick,
    /// For each string of `required`, its rule.
    required_rule: Vec<usize>,
    /// Rules without such strings, which always run.
    ungated: Vec<bool>,
}

/// A pattern without its trailing `\b`: keys may end in `-` or `_`, where `\b` would not
/// match. [`find`] instead refuses a match that runs on into a longer token.
///
/// Word boundaries are ASCII (`(?-u:\b)`): credentials are ASCII, and a Unicode `\b` would
/// push the regex engine off its fast DFA for any text with an emoji in it (measured:
/// 1.2 ms instead of 40 µs for a 750-byte post).
fn open_ended(pattern: &str) -> String {
    pattern
        .strip_suffix(r"\b")
        .unwrap_or(pattern)
        .replace(r"\b", r"(?-u:\b)")
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        // The patterns are constants checked by the tests; a bad one is a programming error.
        let rules = RULES
            .iter()
            .map(|r| {
                (
                    Regex::new(&open_ended(r.pattern))
                        .unwrap_or_else(|e| panic!("{}: {e}", r.name)),
                    r,
                )
            })
            .collect();
        let mut strings = Vec::new();
        let mut required_rule = Vec::new();
        let mut ungated = Vec::new();
        for (i, r) in RULES.iter().enumerate() {
            match crate::chain::required_strings(r.pattern) {
                Some(ps) => {
                    for p in ps {
                        strings.push(p);
                        required_rule.push(i);
                    }
                    ungated.push(false);
                }
                None => ungated.push(true),
            }
        }
        let required = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&strings)
            .unwrap_or_else(|e| panic!("secret strings: {e}"));
        Compiled {
            rules,
            required,
            required_rule,
            ungated,
        }
    })
}

/// Bits of entropy per character of `s`.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// Markers of a documentation placeholder, wherever they appear in a match.
const PLACEHOLDER_MARKERS: &[&str] = &[
    "example",
    "xxxx",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yourpassword",
    "yourapi",
    "placeholder",
    "dummy",
    "redacted",
    "fake",
    "<",
    ">",
    "...",
    "****",
    "####",
    "changeme",
    "change_me",
    "replace_",
    "insert_",
    "${",
    "{{",
    "%s",
    "here>",
    "_here",
    "-here",
    "notreal",
    "not_real",
    "not-real",
];

/// Words that, as the value of a `key = value` assignment, name the thing instead of being it.
const VALUE_WORDS: &[&str] = &[
    "12345678",
    "abcdefgh",
    "qwerty",
    "0000000",
    "1111111",
    "aaaaaaa",
    "test_key",
    "testkey",
    "mykey",
    "my_key",
    "api_key",
    "apikey",
    "password",
    "secret",
    "token",
    "null",
    "undefined",
    "none",
    "sample",
    "todo",
];

fn distinct_bytes(value: &str) -> usize {
    let mut seen = [false; 256];
    value
        .bytes()
        .filter(|&b| !std::mem::replace(&mut seen[b as usize], true))
        .count()
}

/// A format-specific match that is obviously a placeholder.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_MARKERS.iter().any(|m| {
        lower
            .match_indices(m)
            .any(|(i, _)| written_as_word(&value.as_bytes()[i..i + m.len()]))
    }) || distinct_bytes(value) <= 4
}

/// A marker as people write words (`fake`, `FAKE`, `Fake`), not four letters of a random
/// key that happen to spell it (`FAke`: one key in ten thousand holds some such word).
fn written_as_word(s: &[u8]) -> bool {
    let letters = || s.iter().filter(|c| c.is_ascii_alphabetic());
    letters().all(u8::is_ascii_lowercase)
        || letters().all(u8::is_ascii_uppercase)
        || letters().skip(1).all(u8::is_ascii_lowercase)
}

/// The value of a generic assignment that is obviously not a real credential.
fn is_placeholder_value(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    is_placeholder(value)
        || VALUE_WORDS.iter().any(|m| lower.contains(m))
        || is_public_address(value)
}

/// Public blockchain values that follow words like "token:" in crypto posts: contract and
/// wallet addresses (Ethereum `0x` + 40 hex, Solana 32-byte base58 keys, Bitcoin
/// addresses). Publishing them is their purpose.
pub fn is_public_address(v: &str) -> bool {
    let eth = v.len() == 42 && v.starts_with("0x") && v[2..].bytes().all(|b| b.is_ascii_hexdigit());
    let bech32 = (v.starts_with("bc1") || v.starts_with("tb1")) && v.len() >= 40;
    let base58_32 =
        (32..=44).contains(&v.len()) && bs58::decode(v).into_vec().is_ok_and(|b| b.len() == 32);
    let btc = (25..=35).contains(&v.len())
        && (v.starts_with('1') || v.starts_with('3'))
        && bs58::decode(v).with_check(None).into_vec().is_ok();
    eth || bech32 || base58_32 || btc
}

fn valid_jwt(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&bytes);
    text.contains("\"alg\"") || text.contains("\"typ\"")
}

/// The first bytes of base64 `body` are those of a DER private key: a SEQUENCE whose first
/// element is a small version number followed by what follows it in each key format
/// (PKCS#1 RSA and DSA: version 0 then an INTEGER; PKCS#8: version 0 then the algorithm
/// SEQUENCE; SEC1 EC: version 1 then the key OCTET STRING; PKCS#12: version 3 then a
/// SEQUENCE). Public keys begin with a SEQUENCE or a long INTEGER, certificates with a
/// SEQUENCE, so none of them passes.
fn der_private_key(body: &str) -> bool {
    let Some(head) = body.get(..24) else {
        return false;
    };
    let Ok(b) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(head) else {
        return false;
    };
    if b.first() != Some(&0x30) {
        return false;
    }
    let at = match b.get(1) {
        Some(&l) if l < 0x80 => 2,
        Some(0x81) => 3,
        Some(0x82) => 4,
        _ => return false,
    };
    matches!(
        b.get(at..at + 4),
        Some([0x02, 0x01, 0x00, 0x02 | 0x30])
            | Some([0x02, 0x01, 0x01, 0x04])
            | Some([0x02, 0x01, 0x03, 0x30])
    ) && entropy(body) >= 4.0
}

fn valid_base58check(s: &str) -> bool {
    bs58::decode(s).with_check(None).into_vec().is_ok()
}

fn valid_password(v: &str) -> bool {
    if is_placeholder_value(v) || v.len() < 6 {
        return false;
    }
    let lower = v.chars().any(|c| c.is_ascii_lowercase());
    let upper = v.chars().any(|c| c.is_ascii_uppercase());
    let digit = v.chars().any(|c| c.is_ascii_digit());
    let symbol = v.chars().any(|c| !c.is_alphanumeric());
    // A plain word ("required", "incorrect") after "password is" is prose, not a password.
    let classes = [lower, upper, digit, symbol].iter().filter(|&&b| b).count();
    // A link or markdown after "password:" ("filling in your password: ![ok](https://...")
    // asks for one; it is none.
    let link = v.contains("://") || v.starts_with(['!', '[', '(']);
    classes >= 2 && !v.ends_with(':') && !v.starts_with("http") && !link
}

fn check(rule: &Rule, whole: &str, value: &str) -> bool {
    match rule.check {
        Check::Plain => !is_placeholder(whole) && !is_placeholder(value),
        Check::Entropy(min) => {
            !is_placeholder_value(value) && entropy(value) >= min && mixed(value)
        }
        Check::Password => valid_password(value),
        Check::Jwt => valid_jwt(whole),
        Check::Base58Checksum => valid_base58check(whole),
        Check::SolanaKey => {
            bs58::decode(whole).into_vec().is_ok_and(|b| b.len() == 64) && entropy(whole) > 4.5
        }
        Check::BasicAuth => base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.split_once(':').map(|(_, pass)| pass.to_owned()))
            .is_some_and(|pass| pass.len() >= 3 && !is_placeholder_value(&pass)),
        Check::DerPrivateKey => der_private_key(whole),
        Check::DbUrl => {
            value.len() >= 3
                && !is_placeholder_value(value)
                && !value.starts_with('$')
                && !value.starts_with(':')
        }
    }
}

/// Random-looking: letters and digits both present (hex and base64 secrets always are).
fn mixed(v: &str) -> bool {
    v.chars().any(|c| c.is_ascii_alphabetic()) && v.chars().any(|c| c.is_ascii_digit())
}

/// Longest run of characters that can make up a credential.
/// Longest run of characters that can make up a credential and that looks random (has a
/// digit or an uppercase letter: a random 16-character base62 string lacks both with
/// probability about one in a million, while hyphenated words lack both always).
fn longest_token(text: &str) -> usize {
    let (mut best, mut run, mut random) = (0, 0, false);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=' | b'.' | b'$' | b':')
        {
            run += 1;
            random |= b.is_ascii_digit() || b.is_ascii_uppercase();
            if random {
                best = best.max(run);
            }
        } else {
            run = 0;
            random = false;
        }
    }
    best
}

/// Words one of which every context rule needs (checked case-insensitively).
const CONTEXT_HINTS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "bearer",
    "-----begin",
    "://",
    "senha",
    "contrase",
    "mot de passe",
    "wallet",
];

/// What [`find`] did, for the tests (which count work instead of timing it).
#[derive(Debug, Default)]
struct Work {
    /// Rules whose regex ran over the text.
    regex_runs: usize,
    /// BIP39 checksum windows tried.
    seed_windows: usize,
    /// Overlap look-ups (one per candidate match).
    span_lookups: usize,
    /// Texts rejoined and scanned again.
    rejoined: usize,
}

/// Every credential in `text`, at most one per byte range (the first rule wins overlaps):
/// those written out, then those that only read as one once the text is [`rejoin`]ed (a
/// key split across lines or string literals, or disguised inside).
pub fn find(text: &str) -> Vec<SecretMatch> {
    find_counted(text, &mut Work::default())
}

/// Rules not read in a rejoined text: two public Solana addresses joined are as long as a
/// key pair and decode to 64 bytes, and seed words are never split inside a word.
const NOT_REJOINED: &[&str] = &[
    "solana_private_key",
    "bip39_seed_phrase",
    "seed_phrase_in_context",
    "seed_phrase_long_run",
];

fn find_counted(text: &str, work: &mut Work) -> Vec<SecretMatch> {
    let mut out = find_written(text, work);
    let Some(r) = rejoin(text) else {
        return out;
    };
    work.rejoined += 1;
    let mut added = Vec::new();
    let mut replaced = vec![false; out.len()];
    for m in find_written(&r.text, work) {
        if NOT_REJOINED.contains(&m.rule) || !r.repaired(m.start, m.end) {
            continue;
        }
        let (start, end) = r.original_span(m.start, m.end);
        let found = SecretMatch {
            rule: m.rule,
            start,
            end,
            value: Some(r.text[m.start..m.end].to_owned()),
        };
        // `out` is sorted and its spans do not overlap: those overlapping this one are a
        // run of it, found by binary search.
        let i = out.partition_point(|o| o.end <= start);
        let k = out.partition_point(|o| o.start < end).max(i);
        // The part before a line break can already read as a shorter key, or as the value
        // of a generic assignment: the whole key replaces what it covers, so that its
        // value is the whole key. A generic rule never replaces a specific one.
        let covers = out[i..k].iter().all(|o| {
            start <= o.start && end >= o.end && (!is_generic(found.rule) || is_generic(o.rule))
        });
        // Two whole keys of one kind side by side (a list, two lines) joined read as one
        // longer key of that kind: each stays itself (each must be revoked).
        let whole_keys = out[i..k].iter().filter(|o| o.rule == found.rule).count();
        let covers = covers && whole_keys < 2;
        if covers {
            replaced[i..k].fill(true);
            added.push(found);
        }
    }
    if !added.is_empty() {
        let mut keep = replaced.into_iter();
        out.retain(|_| !keep.next().unwrap_or(false));
        out.extend(added);
        out.sort_by_key(|m| m.start);
    }
    out
}

/// Rules that read a value from its context instead of from its format.
fn is_generic(rule: &str) -> bool {
    matches!(
        rule,
        "generic_password" | "generic_secret" | "authorization_bearer"
    )
}

/// Most repairs (joins and substitutions) made in one text: far more than any key split
/// into pieces needs, and a bound on the work for a text made of nothing but split points.
const MAX_REPAIRS: usize = 512;
/// Most bytes looked at on either side of a line break, or between two string literals.
const LOOK: usize = 96;

/// A copy of a text with the ways of splitting or disguising a credential undone, and the
/// map back to the text. Found missed by the first rules, each of which a reader (or a
/// compiler) undoes without noticing:
///
/// - string literals joined by concatenation (`"sk-proj-ab" + "cd"`, Python's adjacent
///   literals, `.` `..` `&` `||` `++` `<>` `~` joins, a backslash continuation between);
/// - a token hard-wrapped across lines (terminal output at a fixed column, with or without
///   indentation; a shell backslash continuation; a literal `\n` in an escaped string):
///   joined only when the two sides together look random, so prose lines stay apart;
/// - markdown emphasis (`*`, `**`) inside a token;
/// - percent-encoded and `\xNN` / `\u00NN` escaped characters;
/// - Cyrillic and Greek look-alike letters, accented letters and combining marks inside
///   a token (the normaliser keeps them: words in those scripts are not disguises);
/// - Unicode tag characters and zero-width characters, when the original text is read.
#[derive(Debug, Clone, Default)]
pub struct Rejoined {
    pub text: String,
    /// For each byte of `text`, the byte range of the text read that it stands for.
    starts: Vec<u32>,
    ends: Vec<u32>,
    /// Offsets in `text` where something was removed between two characters.
    joins: Vec<usize>,
    /// Offsets in `text` of characters written in place of others.
    substituted: Vec<usize>,
}

impl Rejoined {
    /// The range of the text read behind `start..end` of the rejoined text.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.starts.is_empty() {
            return (0, 0);
        }
        let first = start.min(self.starts.len() - 1);
        let last = end.clamp(first + 1, self.ends.len()) - 1;
        (self.starts[first] as usize, self.ends[last] as usize)
    }

    /// True if `start..end` holds a repair: a join strictly inside it, or a substitute.
    pub fn repaired(&self, start: usize, end: usize) -> bool {
        let j = self.joins.partition_point(|&p| p <= start);
        let k = self.substituted.partition_point(|&p| p < start);
        self.joins.get(j).is_some_and(|&p| p < end)
            || self.substituted.get(k).is_some_and(|&p| p < end)
    }

    fn push(&mut self, c: char, start: usize, end: usize) {
        self.text.push(c);
        for _ in 0..c.len_utf8() {
            self.starts.push(start as u32);
            self.ends.push(end as u32);
        }
    }

    fn substitute(&mut self, c: char, start: usize, end: usize) {
        self.substituted.push(self.text.len());
        self.push(c, start, end);
    }

    fn join(&mut self) {
        self.joins.push(self.text.len());
    }
}

/// Characters of keys in every format: base64 and base64url, hex, `_` and `-` separators.
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'/' | b'=')
}

/// The run of key characters that ends `s` (at most [`LOOK`] bytes of it).
fn tail_run(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 && b.len() - i < LOOK && key_byte(b[i - 1]) {
        i -= 1;
    }
    &s[i..]
}

/// The run of key characters that starts `b` (at most [`LOOK`] bytes of it).
fn head_run(b: &[u8]) -> &[u8] {
    let n = b.iter().take(LOOK).take_while(|&&x| key_byte(x)).count();
    &b[..n]
}

/// Two pieces that together could be one random token: 16 characters or more, with a
/// digit, or with capitals past the first letter of each piece beside small letters.
/// Prose lines ("...the end of a\nNew line") fail it, so they are never joined.
fn could_be_one_token(tail: &[u8], head: &[u8]) -> bool {
    if tail.is_empty() || head.is_empty() || tail.len() + head.len() < 16 {
        return false;
    }
    let both = || tail.iter().chain(head);
    let digit = both().any(u8::is_ascii_digit);
    let lower = both().any(u8::is_ascii_lowercase);
    let inner_upper = tail[1..]
        .iter()
        .chain(&head[1..])
        .any(u8::is_ascii_uppercase);
    digit || (lower && inner_upper)
}

/// A short run of small letters ending a line (`cat token.txt`, `source .env`): a word or a
/// file extension, not the end of a key cut by a terminal's width (which is the width of
/// the line, random, and rarely all small letters). Joining it to the next line would glue
/// the word to a key that starts there and hide the key's beginning.
fn short_word(tail: &[u8]) -> bool {
    tail.len() <= 8 && tail.iter().all(u8::is_ascii_lowercase)
}

/// The start of the line at `b` could continue a token from the line before: it is not
/// the next line of a file (`NAME=value`, `key: value`) nor a short word of prose (a
/// random piece of a key is all small letters, then a space, with low probability).
fn next_line_continues(b: &[u8]) -> bool {
    let head = head_run(b);
    let after = b.get(head.len()).copied();
    let assignment = head
        .iter()
        .position(|&c| c == b'=')
        .is_some_and(|p| head[p..].iter().any(|&c| c != b'='));
    // Hex keys continue in small letters a to f only; words nearly always hold another.
    let word = head.len() <= 10
        && head.iter().all(u8::is_ascii_lowercase)
        && head.iter().any(|c| !c.is_ascii_hexdigit())
        && after.is_none_or(|c| !c.is_ascii_alphanumeric());
    !assignment && !word && after != Some(b':')
}

/// After a closing quote at `i`: the glue of a string concatenation and the next literal's
/// opening quote; the index of the literal's first character.
fn glue_end(b: &[u8], i: usize) -> Option<usize> {
    let limit = (i + 1 + LOOK).min(b.len());
    let space = |j: &mut usize| {
        while *j < limit && matches!(b[*j], b' ' | b'\t' | b'\n' | b'\r') {
            *j += 1;
        }
    };
    let mut j = i + 1;
    space(&mut j);
    for op in [
        &b".."[..],
        b"||",
        b"++",
        b"<>",
        b"+",
        b".",
        b"&",
        b"~",
        b"\\",
    ] {
        if b[j..limit].starts_with(op) {
            j += op.len();
            break;
        }
    }
    space(&mut j);
    // Python's string prefixes (f"", rb"").
    let mut k = j;
    while k < limit
        && k - j < 2
        && matches!(b[k], b'r' | b'b' | b'f' | b'u' | b'R' | b'B' | b'F' | b'U')
    {
        k += 1;
    }
    (k < limit && matches!(b[k], b'"' | b'\'' | b'`') && b.get(k + 1).is_some_and(|&x| key_byte(x)))
        .then_some(k + 1)
}

/// After a closing quote at `i`, the next element of a list of string literals
/// (`["sk-proj-ab", "cd..."]`, `('ab', 'cd')`, the pieces of a `join`): the index of its
/// first character. Only inside a list: the literal closed at `i` opens after `[`, `(` or
/// a comma, and the next one is followed by a comma, `]` or `)`, with the same quotes, so
/// the values of a dict or a JSON object (`"abc123", "organization": ...`) are never
/// joined to the key after them.
fn list_glue_end(b: &[u8], i: usize) -> Option<usize> {
    let quote = b[i];
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    // This literal's opening quote, and what stands before it.
    let run = b[..i]
        .iter()
        .rev()
        .take(LOOK)
        .take_while(|&&c| key_byte(c))
        .count();
    let open = i.checked_sub(run + 1)?;
    if b[open] != quote {
        return None;
    }
    let before = b[..open].iter().rev().take(LOOK).find(|&&c| !is_space(c));
    if !matches!(before, Some(b'[' | b'(' | b',')) {
        return None;
    }
    // A comma, then the next literal with the same quotes, then a comma or the list's end.
    let limit = (i + 1 + LOOK).min(b.len());
    let mut j = i + 1;
    while j < limit && is_space(b[j]) {
        j += 1;
    }
    if b.get(j) != Some(&b',') {
        return None;
    }
    j += 1;
    while j < limit && is_space(b[j]) {
        j += 1;
    }
    if j >= limit || b[j] != quote {
        return None;
    }
    let start = j + 1;
    let len = b[start..]
        .iter()
        .take(LOOK)
        .take_while(|&&c| key_byte(c))
        .count();
    if len == 0 || b.get(start + len) != Some(&quote) {
        return None;
    }
    let after = b[start + len + 1..]
        .iter()
        .take(LOOK)
        .find(|&&c| !is_space(c));
    matches!(after, Some(b',' | b']' | b')')).then_some(start)
}

/// A line break at `i` (a newline, a backslash continuation, or a literal `\n` / `\r\n`
/// escape) and the indentation after it: the index of the next line's first character,
/// and whether the break is a real one (not an escape).
fn line_break_end(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let rest = &b[i..];
    let len = if rest.starts_with(b"\n") {
        1
    } else if rest.starts_with(b"\r\n") || rest.starts_with(b"\\\n") {
        2
    } else if rest.starts_with(b"\\\r\n") || rest.starts_with(b"\\r\\n") {
        if rest.starts_with(b"\\\r\n") { 3 } else { 4 }
    } else if rest.starts_with(b"\\n") {
        2
    } else {
        return None;
    };
    let real = b[i + len - 1] == b'\n';
    let mut j = i + len;
    let limit = (j + LOOK).min(b.len());
    while j < limit && matches!(b[j], b' ' | b'\t') {
        j += 1;
    }
    Some((j, real))
}

/// Look-alikes of ASCII letters and digits from other scripts, case kept (the confusable
/// skeleton folds `I` to `l`, which would change a key). Others go by their skeleton.
fn look_alike(c: char) -> Option<char> {
    let ascii = match c {
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' | 'Ӏ' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Ν' => 'N',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ԛ' => 'Q',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Ԝ' => 'W',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' | 'Ү' => 'Y',
        'Ζ' => 'Z',
        'а' | 'α' => 'a',
        'Ь' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'ɡ' => 'g',
        'һ' => 'h',
        'і' | 'ι' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' => 'k',
        'ӏ' => 'l',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'х' | 'χ' => 'x',
        'у' => 'y',
        _ => {
            let mut buf = [0u8; 4];
            let mut skeleton = unicode_security::skeleton(c.encode_utf8(&mut buf));
            match (skeleton.next(), skeleton.next()) {
                (Some(s), None) if s.is_ascii_alphanumeric() => s,
                _ => {
                    // An accented letter: its base letter, if ASCII.
                    let mut base = None;
                    let mut marks_only = true;
                    unicode_normalization::char::decompose_canonical(c, |d| {
                        if base.is_none() {
                            base = Some(d);
                        } else if !unicode_normalization::char::is_combining_mark(d) {
                            marks_only = false;
                        }
                    });
                    return base.filter(|b| b.is_ascii_alphanumeric() && *b != c && marks_only);
                }
            }
        }
    };
    Some(ascii)
}

/// Invisible characters that can sit inside a token in an original text (the clean view
/// has already dropped them).
fn invisible_in_token(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}' | '\u{FE00}'..='\u{FE0F}'
    )
}

/// `text` with splits and disguises inside tokens undone (see [`Rejoined`]); `None` if
/// there were none. One pass; each position is looked at a bounded number of times.
pub fn rejoin(text: &str) -> Option<Rejoined> {
    let b = text.as_bytes();
    let special =
        |x: &u8| matches!(x, b'\n' | b'"' | b'\'' | b'`' | b'*' | b'%' | b'\\') || !x.is_ascii();
    if !b.iter().any(special) {
        return None;
    }
    // The copy is made at the first repair (until then it would be the text itself): most
    // texts have line breaks and quotes but nothing to repair, and cost one look then.
    let mut r: Option<Rejoined> = None;
    let begin = |r: &mut Option<Rejoined>, i: usize| -> Rejoined {
        r.take().unwrap_or_else(|| {
            let mut copy = Rejoined {
                text: String::with_capacity(text.len()),
                starts: Vec::with_capacity(text.len()),
                ends: Vec::with_capacity(text.len()),
                ..Rejoined::default()
            };
            for (o, c) in text[..i].char_indices() {
                copy.push(c, o, o + c.len_utf8());
            }
            copy
        })
    };
    let mut repairs = 0;
    // Where the current line starts, and the length of the line it continues if it is a
    // wrapped one: hard-wrapped lines are all as long as the terminal is wide but the last,
    // so a continuation shorter than the line before ends the token (the next line is
    // other text, not more of it).
    let mut line_start = 0;
    let mut continues: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        let x = b[i];
        let out = r.as_ref().map_or(&text[..i], |r| r.text.as_str());
        let prev_key = out.as_bytes().last().is_some_and(|&p| key_byte(p));
        if repairs < MAX_REPAIRS {
            if matches!(x, b'"' | b'\'' | b'`')
                && prev_key
                && let Some(next) = glue_end(b, i).or_else(|| {
                    list_glue_end(b, i).filter(|&n| {
                        could_be_one_token(tail_run(out).as_bytes(), head_run(&b[n..]))
                    })
                })
            {
                let mut copy = begin(&mut r, i);
                copy.join();
                r = Some(copy);
                repairs += 1;
                i = next;
                continue;
            }
            if matches!(x, b'\n' | b'\r' | b'\\')
                && prev_key
                && let Some((next, real)) = line_break_end(b, i)
                && (!real || continues.is_none_or(|before| i - line_start >= before))
                && !(real && short_word(tail_run(out).as_bytes()))
                && next_line_continues(&b[next..])
                && could_be_one_token(tail_run(out).as_bytes(), head_run(&b[next..]))
            {
                if real {
                    continues = Some(i - line_start);
                    line_start = b[..next]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(next, |p| p + 1);
                }
                let mut copy = begin(&mut r, i);
                copy.join();
                r = Some(copy);
                repairs += 1;
                i = next;
                continue;
            }
            if x == b'*' && prev_key {
                let stars = b[i..].iter().take(3).take_while(|&&s| s == b'*').count();
                let next = i + stars;
                if stars <= 2 && could_be_one_token(tail_run(out).as_bytes(), head_run(&b[next..]))
                {
                    let mut copy = begin(&mut r, i);
                    copy.join();
                    r = Some(copy);
                    repairs += 1;
                    i = next;
                    continue;
                }
            }
            // A JSON or source `\uXXXX` escape of an invisible character, a combining mark
            // or a look-alike letter inside a token: what the escape stands for, repaired.
            if x == b'\\'
                && b.get(i + 1) == Some(&b'u')
                && let Some(hex) = text.get(i + 2..i + 6)
                && let Ok(code) = u32::from_str_radix(hex, 16)
                && code >= 0x80
                && let Some(c) = char::from_u32(code)
            {
                let next_ascii = b.get(i + 6).is_some_and(u8::is_ascii_alphanumeric);
                if prev_key
                    && (invisible_in_token(c) || unicode_normalization::char::is_combining_mark(c))
                {
                    let mut copy = begin(&mut r, i);
                    copy.join();
                    r = Some(copy);
                    repairs += 1;
                    i += 6;
                    continue;
                }
                if (prev_key || next_ascii)
                    && let Some(a) = look_alike(c)
                {
                    let mut copy = begin(&mut r, i);
                    copy.substitute(a, i, i + 6);
                    r = Some(copy);
                    repairs += 1;
                    i += 6;
                    continue;
                }
            }
            let escaped = match x {
                b'%' => Some((1, 2)),
                b'\\' if b.get(i + 1) == Some(&b'x') => Some((2, 2)),
                b'\\' if b[i..].starts_with(b"\\u00") => Some((4, 2)),
                _ => None,
            };
            if let Some((skip, digits)) = escaped
                && let Some(hex) = text.get(i + skip..i + skip + digits)
                && let Ok(v) = u8::from_str_radix(hex, 16)
                && v.is_ascii_graphic()
            {
                let mut copy = begin(&mut r, i);
                copy.substitute(v as char, i, i + skip + digits);
                r = Some(copy);
                repairs += 1;
                i += skip + digits;
                continue;
            }
        }
        if x.is_ascii() {
            if x == b'\n' {
                line_start = i + 1;
                continues = None;
            }
            if let Some(r) = r.as_mut() {
                r.push(x as char, i, i + 1);
            }
            i += 1;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let end = i + c.len_utf8();
        if repairs < MAX_REPAIRS {
            let next_ascii = b.get(end).is_some_and(u8::is_ascii_alphanumeric);
            if (0xE0021..=0xE007E).contains(&(c as u32)) {
                if let Some(a) = char::from_u32(c as u32 - 0xE0000) {
                    let mut copy = begin(&mut r, i);
                    copy.substitute(a, i, end);
                    r = Some(copy);
                    repairs += 1;
                    i = end;
                    continue;
                }
            } else if (invisible_in_token(c) || unicode_normalization::char::is_combining_mark(c))
                && prev_key
            {
                let mut copy = begin(&mut r, i);
                copy.join();
                r = Some(copy);
                repairs += 1;
                i = end;
                continue;
            } else if (prev_key || next_ascii)
                && let Some(a) = look_alike(c)
            {
                let mut copy = begin(&mut r, i);
                copy.substitute(a, i, end);
                r = Some(copy);
                repairs += 1;
                i = end;
                continue;
            }
        }
        if let Some(r) = r.as_mut() {
            r.push(c, i, end);
        }
        i = end;
    }
    r
}

/// Credentials written out in `text`, rule by rule.
fn find_written(text: &str, work: &mut Work) -> Vec<SecretMatch> {
    let c = compiled();
    let mut out: Vec<SecretMatch> = Vec::new();
    // Cheap gates first: format rules need a long token, context rules a keyword. Most
    // posts have neither, and then no pattern runs at all.
    let long_token = longest_token(text) >= 16;
    let lower = text.to_ascii_lowercase();
    let context = CONTEXT_HINTS.iter().any(|h| lower.contains(h));
    let seeds = scan_seed_phrases(text);
    work.seed_windows += seeds.windows;
    if !long_token && !context {
        out.extend(seeds.found);
        return out;
    }
    // Then the strings each rule's matches contain: one pass for all rules. (A `RegexSet`
    // of all the rules answered the same question, but its lazy DFA gave up on texts dense
    // with keywords and assignments, and its fallback took 2.7 µs a byte.)
    let mut present = c.ungated.clone();
    for m in c.required.find_overlapping_iter(text) {
        present[c.required_rule[m.pattern().as_usize()]] = true;
    }
    // Under `(?i)` the long s and the Kelvin sign match `s` and `k`, which ASCII case
    // folding does not see. (The clean view has none: NFKC folds them.)
    if !text.is_ascii() && text.contains(['\u{17F}', '\u{212A}']) {
        for (p, r) in present.iter_mut().zip(RULES) {
            *p |= r.pattern.starts_with("(?i)");
        }
    }
    let mut taken = Taken::default();
    for (idx, (re, rule)) in c.rules.iter().enumerate() {
        let contextual = rule.pattern.contains("(?P<v>");
        let kind = (long_token && context)
            || if long_token {
                !contextual
            } else {
                contextual || rule.name == "private_key_block"
            };
        if !kind || !present[idx] {
            continue;
        }
        work.regex_runs += 1;
        for caps in re.captures_iter(text) {
            let Some(whole) = caps.get(0) else { continue };
            let value = caps.name("v").unwrap_or(whole);
            // The format's fixed length ended inside a longer token: not this format.
            let runs_on = text[whole.end()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && rule.pattern.ends_with(r"\b");
            if runs_on || !check(rule, whole.as_str(), value.as_str()) {
                continue;
            }
            let (start, end) = (value.start(), value.end());
            if !taken.take(start, end) {
                continue;
            }
            out.push(SecretMatch {
                rule: rule.name,
                start,
                end,
                value: None,
            });
        }
    }
    for s in seeds.found {
        if !taken.overlaps(s.start, s.end) {
            out.push(s);
        }
    }
    work.span_lookups += taken.lookups;
    out.sort_by_key(|m| m.start);
    out
}

/// FNV-1a: the BIP39 look-up runs for every word of every text, and the words are our
/// own constants, so a fast non-keyed hash is safe here.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Each English list word and its 11-bit index.
type WordIndex = std::collections::HashMap<&'static str, u16, std::hash::BuildHasherDefault<Fnv>>;

fn bip39_words() -> &'static WordIndex {
    static W: OnceLock<WordIndex> = OnceLock::new();
    W.get_or_init(|| {
        bip39::Language::English
            .word_list()
            .iter()
            .zip(0u16..)
            .map(|(w, i)| (*w, i))
            .collect()
    })
}

/// Mnemonic lengths, longest first: the longest valid phrase in a run is the one reported.
const MNEMONIC_LENGTHS: [usize; 5] = [24, 21, 18, 15, 12];

/// Longest run of list words whose windows are checked one by one. A longer run is no
/// prose (the longest in 2,688 real posts is 9 words) and almost surely holds a valid
/// phrase anyway (a random 48-word run does with probability 0.99), so it is reported
/// whole without checking: checking every window of every length of a 40 KB run took
/// 0.2 s per text.
pub const MAX_CHECKED_RUN: usize = 48;

/// Distinct words a longer run needs to be reported: a random 12-word phrase has at least
/// 10 with probability above 0.99999, while one word repeated ("ignore ignore ...") is
/// spam, not a seed.
const MIN_DISTINCT_IN_LONG_RUN: usize = 10;

fn distinct_words(run: &[(u16, usize, usize)]) -> usize {
    let mut seen = [0u64; 2048 / 64];
    run.iter()
        .filter(|&&(w, _, _)| {
            let (word, bit) = (w as usize / 64, 1u64 << (w % 64));
            let new = seen[word] & bit == 0;
            seen[word] |= bit;
            new
        })
        .count()
}

/// True if the words with these list indices form a mnemonic whose checksum holds (the
/// last `len / 3` bits are the leading bits of SHA-256 of the rest). Equivalent to
/// `bip39::Mnemonic::parse` on list words, without its string building and look-ups.
fn checksum_holds(indices: &[u16]) -> bool {
    use sha2::{Digest, Sha256};
    let checksum_bits = indices.len() / 3;
    let entropy_bytes = (indices.len() * 11 - checksum_bits) / 8;
    let mut bits = [0u8; 33];
    for (w, &index) in indices.iter().enumerate() {
        for b in 0..11 {
            if index >> (10 - b) & 1 == 1 {
                let at = w * 11 + b;
                bits[at / 8] |= 0x80 >> (at % 8);
            }
        }
    }
    let hash = Sha256::digest(&bits[..entropy_bytes]);
    let shift = 8 - checksum_bits;
    hash[0] >> shift == bits[entropy_bytes] >> shift
}

/// What [`seed_phrases`] found, and how many checksum windows it tried.
struct SeedScan {
    found: Vec<SecretMatch>,
    windows: usize,
}

/// BIP39 mnemonics: 12 to 24 consecutive words of the English list whose checksum holds,
/// or such a run beside words that name it (seed, mnemonic, recovery phrase, wallet), or a
/// run too long to be anything but a list of seed words.
fn scan_seed_phrases(text: &str) -> SeedScan {
    let mut scan = SeedScan {
        found: Vec::new(),
        windows: 0,
    };
    let lower = text.to_ascii_lowercase();
    let context = [
        "seed",
        "mnemonic",
        "recovery",
        "phrase",
        "wallet",
        "backup words",
        "secret words",
        "12 words",
        "24 words",
    ]
    .iter()
    .any(|w| lower.contains(w));
    // The current run: list indices and the byte span of each word.
    let mut run: Vec<(u16, usize, usize)> = Vec::new();
    let flush = |run: &mut Vec<(u16, usize, usize)>, scan: &mut SeedScan| {
        if run.len() >= 12 {
            let span = |s: usize, len: usize| SecretMatch {
                rule: "bip39_seed_phrase",
                start: run[s].1,
                end: run[s + len - 1].2,
                value: None,
            };
            let mut found = None;
            if run.len() > MAX_CHECKED_RUN {
                if distinct_words(run) >= MIN_DISTINCT_IN_LONG_RUN {
                    found = Some(SecretMatch {
                        rule: "seed_phrase_long_run",
                        ..span(0, run.len())
                    });
                }
            } else {
                let indices: Vec<u16> = run.iter().map(|w| w.0).collect();
                'lengths: for len in MNEMONIC_LENGTHS {
                    for s in 0..=indices.len().saturating_sub(len) {
                        if s + len > indices.len() {
                            break;
                        }
                        scan.windows += 1;
                        if checksum_holds(&indices[s..s + len]) {
                            found = Some(span(s, len));
                            break 'lengths;
                        }
                    }
                }
            }
            if found.is_none() && context {
                found = Some(SecretMatch {
                    rule: "seed_phrase_in_context",
                    ..span(0, run.len())
                });
            }
            scan.found.extend(found);
        }
        run.clear();
    };
    let mut i = 0;
    let bytes = lower.as_bytes();
    while i < bytes.len() {
        if bytes[i].is_ascii_lowercase() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_lowercase() {
                i += 1;
            }
            match bip39_words().get(&lower[start..i]) {
                Some(&index) => run.push((index, start, i)),
                None => flush(&mut run, &mut scan),
            }
        } else {
            // Separators between seed words: white space, commas, numbering ("1." "2)").
            let c = bytes[i];
            if !(c.is_ascii_whitespace()
                || c.is_ascii_digit()
                || matches!(c, b',' | b'.' | b')' | b'-' | b':' | b'"' | b'\''))
            {
                flush(&mut run, &mut scan);
            }
            i += 1;
        }
    }
    flush(&mut run, &mut scan);
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<&'static str> {
        find(text).into_iter().map(|m| m.rule).collect()
    }

    #[test]
    fn every_pattern_compiles() {
        let _ = compiled();
        assert!(RULES.len() >= 60, "{}", RULES.len());
    }

    /// Deterministic random strings of exact lengths over an alphabet (xorshift).
    pub(crate) fn rnd(seed: u64, len: usize, alphabet: &str) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chars[(x % chars.len() as u64) as usize]
            })
            .collect()
    }
    pub(crate) const B62: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    pub(crate) const HEX: &str = "0123456789abcdef";

    #[test]
    fn real_looking_credentials_are_found() {
        let up = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let cases: Vec<(String, &str)> = vec![
            (format!("key: moltbook_sk_{}", rnd(1, 43, B62)), "tidepool_api_key"),
            (format!("AKIA{} in config", rnd(2, 16, up)), "aws_access_key_id"),
            (format!("aws_secret_access_key = {}", rnd(3, 40, b64)), "aws_secret_access_key"),
            (format!("token ghp_{}", rnd(4, 36, B62)), "github_token"),
            (format!("github_pat_{}", rnd(5, 82, B62)), "github_fine_grained_pat"),
            (format!("glpat-{}", rnd(6, 20, url)), "gitlab_token"),
            (format!("OPENAI_API_KEY=sk-proj-{}", rnd(7, 48, url)), "openai_api_key"),
            (format!("sk-ant-api03-{}", rnd(8, 93, url)), "anthropic_api_key"),
            (format!("AIza{}", rnd(9, 35, url)), "google_api_key"),
            (format!("xoxb-{}-{}-{}", rnd(10, 11, "0123456789"), rnd(11, 13, "0123456789"), rnd(12, 24, B62)), "slack_token"),
            (format!("sk_live_{}", rnd(13, 32, B62)), "stripe_secret_key"),
            (format!("SG.{}.{}", rnd(14, 22, url), rnd(15, 43, url)), "sendgrid_api_key"),
            (format!("hf_{}", rnd(16, 34, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")), "huggingface_token"),
            (format!("npm_{}", rnd(17, 36, B62)), "npm_token"),
            (format!("bot {}:AA{}", rnd(18, 10, "0123456789"), rnd(19, 33, url)), "telegram_bot_token"),
            (format!("gsk_{}", rnd(20, 52, B62)), "groq_api_key"),
            (format!("dop_v1_{}", rnd(21, 64, HEX)), "digitalocean_token"),
            (format!("pypi-AgEIcHlwaS5vcmc{}", rnd(22, 60, url)), "pypi_token"),
            (format!("dckr_pat_{}", rnd(23, 27, url)), "dockerhub_token"),
            (format!("sk-or-v1-{}", rnd(24, 64, HEX)), "openrouter_api_key"),
            (format!("shpat_{}", rnd(25, 32, HEX)), "shopify_token"),
            (format!("https://discord.com/api/webhooks/{}/{}", rnd(26, 18, "0123456789"), rnd(27, 68, url)), "discord_webhook"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA".to_owned(), "private_key_block"),
            ("-----BEGIN RSA PRIVATE KEY-----".to_owned(), "private_key_block"),
            ("postgres://admin:S3cr3tP4ss!@db.internal:5432/prod".to_owned(), "database_url_with_password"),
            (
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U".to_owned(),
                "jwt",
            ),
            ("my password is Tr0ub4dor&3".to_owned(), "generic_password"),
            (format!("client_secret: {}", rnd(28, 24, B62)), "generic_secret"),
            ("5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ".to_owned(), "bitcoin_wif_private_key"),
            (format!("https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/{}", rnd(29, 24, B62)), "slack_webhook"),
            (format!("private key: 0x{}", rnd(30, 64, HEX)), "ethereum_private_key"),
            (format!("AGE-SECRET-KEY-1{}", rnd(31, 58, up)), "age_secret_key"),
            // Environment-style names and headers.
            (format!("MY_SERVICE_TOKEN={}", rnd(35, 32, B62)), "generic_secret"),
            (format!("STRIPE_SECRET: \"{}\"", rnd(36, 28, B62)), "generic_secret"),
            (format!("DB_PASSWORD={}", "Zq8!vR2#mT6"), "generic_password"),
            ("Authorization: Basic YWRtaW46czNjcjN0UGFzcw==".to_owned(), "basic_auth_header"),
            (format!("x-api-key: {}", rnd(37, 32, B62)), "generic_secret"),
            // More providers.
            (format!("xkeysib-{}-{}", rnd(38, 64, HEX), rnd(39, 16, B62)), "brevo_api_key"),
            (format!("CFPAT-{}", rnd(40, 43, url)), "contentful_token"),
            (format!("pul-{}", rnd(41, 40, HEX)), "pulumi_token"),
            (format!("dapi{}", rnd(42, 32, HEX)), "databricks_token"),
            (format!("squ_{}", rnd(43, 40, HEX)), "sonarqube_token"),
            (format!("bkua_{}", rnd(44, 40, HEX)), "buildkite_token"),
            (format!("sl.{}", rnd(45, 135, url)), "dropbox_token"),
            (format!("EAACEdEose0cBA{}", rnd(46, 100, B62)), "facebook_access_token"),
            (format!("AAAAAAAAAAAAAAAAAAAAA{}", rnd(47, 80, B62)), "twitter_bearer_token"),
            (format!("azure client secret: {}~{}", rnd(48, 3, B62), rnd(49, 36, url)), "azure_client_secret"),
            // Keys whose last character is not a word character.
            (format!("token={}:AA{}-", rnd(32, 10, "0123456789"), rnd(33, 32, url)), "telegram_bot_token"),
            (format!("AIza{}_", rnd(34, 34, url)), "google_api_key"),
        ];
        for (text, rule) in &cases {
            assert!(
                rules(text).contains(rule),
                "{rule} not found in {text}: {:?}",
                rules(text)
            );
        }
    }

    /// Deterministic pseudo-random bytes (xorshift).
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// `body` as a PEM body: base64 lines of 64 characters.
    fn pem_lines(der: &[u8]) -> String {
        let text = b64(der);
        text.as_bytes()
            .chunks(64)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The found rules and the value each match stands for.
    fn found(text: &str) -> Vec<(&'static str, String)> {
        find(text)
            .into_iter()
            .map(|m| {
                let v = m.value.unwrap_or_else(|| text[m.start..m.end].to_owned());
                (m.rule, v)
            })
            .collect()
    }

    #[test]
    fn keys_split_by_code_and_line_wraps_are_rejoined() {
        let openai = format!("sk-proj-{}", rnd(60, 56, B62));
        let (a, b) = openai.split_at(20);
        let ghp = format!("ghp_{}", rnd(61, 36, B62));
        let (g1, g2) = ghp.split_at(17);
        let tidepool = format!("moltbook_sk_{}", rnd(62, 43, B62));
        let (t1, t2) = tidepool.split_at(30);
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("key = \"{a}\" + \"{b}\""),
                "openai_api_key",
                &openai,
            ),
            (
                format!("KEY = (\n    \"{a}\"\n    \"{b}\"\n)"),
                "openai_api_key",
                &openai,
            ),
            (format!("$key = '{a}' . '{b}';"), "openai_api_key", &openai),
            (
                format!("local k = \"{g1}\" .. \"{g2}\""),
                "github_token",
                &ghp,
            ),
            (
                format!("const t = `{g1}` +\n      `{g2}`;"),
                "github_token",
                &ghp,
            ),
            (
                format!("k = \"{g1}\" \\\n    \"{g2}\""),
                "github_token",
                &ghp,
            ),
            (
                format!("export GITHUB_TOKEN={g1}\\\n{g2}"),
                "github_token",
                &ghp,
            ),
            // Terminal output hard-wrapped at a column, with and without indentation.
            (
                format!("$ cat .env\nOPENAI_API_KEY={a}\n{b}\n$ ls"),
                "openai_api_key",
                &openai,
            ),
            (
                format!("  token: {t1}\n         {t2}\n  ok"),
                "tidepool_api_key",
                &tidepool,
            ),
            // The command's line ends in a small word (the file name) just before the key's
            // first line: the word stays apart, the key's lines are joined.
            (
                format!("$ cat token.txt\n{}\n{}\n$", &ghp[..26], &ghp[26..]),
                "github_token",
                &ghp,
            ),
            // Pieces of a list joined in code.
            (
                format!(
                    "key = ''.join(['{}', '{}', '{}'])",
                    &openai[..16],
                    &openai[16..32],
                    &openai[32..]
                ),
                "openai_api_key",
                &openai,
            ),
            (
                format!("const k = [\"{g1}\", \"{g2}\"].join(\"\");"),
                "github_token",
                &ghp,
            ),
            // A literal \n in an escaped string, and markdown bold inside the token.
            (format!("{{\"k\": \"{g1}\\n{g2}\"}}"), "github_token", &ghp),
            (format!("my key {g1}**{g2}** lol"), "github_token", &ghp),
            // Two fields joined with a newline: the title ends with half of the key.
            (
                format!("Debugging my bot, key {t1}\n{t2} fails with 401"),
                "tidepool_api_key",
                &tidepool,
            ),
        ];
        for (text, rule, key) in &cases {
            let f = found(text);
            assert!(
                f.iter().any(|(r, v)| r == rule && v == key),
                "{rule} {key} not found in {text:?}: {f:?}"
            );
        }
        // The span covers both halves in the text as written.
        let text = format!("x = \"{a}\" + \"{b}\"");
        let m = find(&text)
            .into_iter()
            .find(|m| m.rule == "openai_api_key")
            .unwrap();
        assert_eq!(&text[m.start..m.end], &format!("{a}\" + \"{b}"));
    }

    #[test]
    fn keys_disguised_inside_are_found() {
        let ghp = format!("ghp_{}", rnd(63, 36, B62));
        let cases: Vec<String> = vec![
            // Cyrillic and Greek look-alikes.
            ghp.replacen('p', "\u{0440}", 1),
            ghp.replacen('h', "\u{04BB}", 1),
            format!("gh\u{03C1}_{}", &ghp[4..]),
            // Combining marks, composed or not.
            format!("{}\u{0301}{}", &ghp[..10], &ghp[10..]),
            format!("{}\u{0336}{}", &ghp[..12], &ghp[12..]),
            // Percent and hex escapes.
            ghp.replace('_', "%5F"),
            ghp.bytes().map(|b| format!("%{b:02X}")).collect(),
            ghp.replace('_', "\\x5f"),
            // Tag characters (read in the original text) and zero-width characters.
            format!(
                "{}{}",
                &ghp[..8],
                ghp[8..]
                    .chars()
                    .map(|c| char::from_u32(0xE0000 + c as u32).unwrap())
                    .collect::<String>()
            ),
            format!("{}\u{200B}{}", &ghp[..8], &ghp[8..]),
        ];
        for text in &cases {
            let f = found(text);
            assert!(
                f.iter().any(|(r, v)| *r == "github_token" && *v == ghp),
                "not found in {text:?}: {f:?}"
            );
        }
    }

    #[test]
    fn newer_provider_formats_are_found_and_publishable_keys_are_not() {
        let url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let lower = "abcdefghijklmnopqrstuvwxyz0123456789";
        let cases: Vec<(String, &str)> = vec![
            (
                format!(
                    "SUPABASE_SECRET_KEY=sb_secret_{}_{}",
                    rnd(70, 22, url),
                    rnd(71, 8, B62)
                ),
                "supabase_secret_key",
            ),
            (
                format!("sk-ant-oat01-{}", rnd(72, 95, url)),
                "anthropic_api_key",
            ),
            (
                format!("re_{}_{}", rnd(73, 8, B62), rnd(74, 24, B62)),
                "resend_api_key",
            ),
            (format!("tvly-dev-{}", rnd(75, 32, B62)), "tavily_api_key"),
            (format!("fc-{}", rnd(76, 32, HEX)), "firecrawl_api_key"),
            (
                format!("xi-api-key: sk_{}", rnd(77, 48, HEX)),
                "elevenlabs_api_key",
            ),
            (
                format!("pcsk_{}_{}", rnd(78, 6, B62), rnd(79, 64, B62)),
                "pinecone_api_key",
            ),
            (
                format!("phx_{}", rnd(80, 47, B62)),
                "posthog_personal_api_key",
            ),
            (
                format!(
                    "sk-lf-{}-{}-{}-{}-{}",
                    rnd(81, 8, HEX),
                    rnd(82, 4, HEX),
                    rnd(83, 4, HEX),
                    rnd(84, 4, HEX),
                    rnd(85, 12, HEX)
                ),
                "langfuse_secret_key",
            ),
            (
                format!("pscale_tkn_{}", rnd(86, 43, B62)),
                "planetscale_token",
            ),
            (format!("napi_{}", rnd(87, 64, lower)), "neon_api_key"),
            (format!("rnd_{}", rnd(88, 32, B62)), "render_api_key"),
            (format!("nfp_{}", rnd(89, 40, B62)), "netlify_token"),
            (
                format!("tskey-auth-{}-{}", rnd(90, 12, B62), rnd(91, 32, B62)),
                "tailscale_key",
            ),
            (
                format!("ops_eyJ{}", rnd(92, 200, url)),
                "onepassword_service_account_token",
            ),
            (format!("glc_{}", rnd(93, 80, B62)), "grafana_cloud_token"),
            (
                format!("sgp_{}_{}", rnd(94, 16, HEX), rnd(95, 40, HEX)),
                "sourcegraph_token",
            ),
            (
                format!(
                    "dt0c01.{}.{}",
                    rnd(96, 24, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                    rnd(97, 64, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                ),
                "dynatrace_token",
            ),
            (
                format!(
                    "pat-na1-{}-{}-{}-{}-{}",
                    rnd(98, 8, HEX),
                    rnd(99, 4, HEX),
                    rnd(100, 4, HEX),
                    rnd(101, 4, HEX),
                    rnd(102, 12, HEX)
                ),
                "hubspot_private_app_token",
            ),
            (format!("tgp_v1_{}", rnd(103, 43, url)), "together_api_key"),
            (
                format!("refresh: 1//0{}", rnd(104, 100, url)),
                "google_oauth_refresh_token",
            ),
            (
                format!("client = OpenAI(api_key=\"sk-{}\")", rnd(105, 32, HEX)),
                "sk_hex_api_key",
            ),
            (format!("AKID{}", rnd(106, 32, B62)), "tencent_secret_id"),
        ];
        for (text, rule) in &cases {
            assert!(
                rules(text).contains(rule),
                "{rule} not found in {text}: {:?}",
                rules(text)
            );
        }
        for text in [
            format!(
                "NEXT_PUBLIC_SUPABASE_KEY=sb_publishable_{}_{}",
                rnd(110, 22, url),
                rnd(111, 8, B62)
            ),
            format!("posthog.init('phc_{}')", rnd(112, 43, B62)),
            format!(
                "LANGFUSE_PUBLIC_KEY=pk-lf-{}-{}-{}-{}-{}",
                rnd(113, 8, HEX),
                rnd(114, 4, HEX),
                rnd(115, 4, HEX),
                rnd(116, 4, HEX),
                rnd(117, 12, HEX)
            ),
            format!("STRIPE_PUBLISHABLE_KEY=pk_live_{}", rnd(118, 99, B62)),
            "SUPABASE_SECRET_KEY=sb_secret_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".to_owned(),
            "sb_secret_YOUR_SECRET_KEY_HERE_abcdefg".to_owned(),
        ] {
            assert!(
                rules(&text).is_empty(),
                "false positive in {text}: {:?}",
                rules(&text)
            );
        }
    }

    #[test]
    fn private_key_bodies_are_found_without_their_header() {
        // PKCS#1 RSA, PKCS#8, SEC1 EC and PKCS#8 Ed25519, as DER heads and random bodies.
        let mut rsa = vec![
            0x30, 0x82, 0x04, 0xA4, 0x02, 0x01, 0x00, 0x02, 0x82, 0x01, 0x01, 0x00,
        ];
        rsa.extend(bytes(1, 1180));
        let mut pkcs8 = vec![
            0x30, 0x82, 0x04, 0xBE, 0x02, 0x01, 0x00, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48,
            0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
        ];
        pkcs8.extend(bytes(2, 1200));
        let mut ec = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
        ec.extend(bytes(3, 112));
        let mut ed = vec![
            0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        ed.extend(bytes(4, 32));
        for der in [&rsa, &pkcs8, &ec, &ed] {
            let body = pem_lines(der);
            for text in [
                format!("here is the key file:\n{body}\n-----END PRIVATE KEY-----"),
                format!("key:\n{body}"),
                format!("```\n{}\n```", body.replace('\n', "\n    ")),
            ] {
                let r = rules(&text);
                assert!(
                    r.iter().any(|r| r.starts_with("private_key")),
                    "not found in {text}: {r:?}"
                );
            }
        }
        let openssh = format!("b3BlbnNzaC1rZXktdjEAAAAA{}", &b64(&bytes(5, 300)));
        assert!(rules(&openssh).contains(&"openssh_private_key_body"));
        // Headers with odd spacing or dashes.
        for header in [
            "-----BEGIN  RSA  PRIVATE KEY-----",
            "----- BEGIN PRIVATE KEY -----",
            "-----BEGIN EC PRIVATE\nKEY-----",
            "----BEGIN OPENSSH PRIVATE KEY----",
        ] {
            assert_eq!(rules(header), ["private_key_block"], "{header}");
        }
        // Public keys, certificates and SSH public keys are no secret.
        let mut spki = vec![
            0x30, 0x82, 0x01, 0x22, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D,
            0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0F, 0x00,
        ];
        spki.extend(bytes(6, 270));
        let mut rsa_public = vec![0x30, 0x82, 0x01, 0x0A, 0x02, 0x82, 0x01, 0x01, 0x00];
        rsa_public.extend(bytes(7, 260));
        let mut cert = vec![
            0x30, 0x82, 0x03, 0x50, 0x30, 0x82, 0x02, 0x38, 0xA0, 0x03, 0x02, 0x01, 0x02, 0x02,
            0x09, 0x00,
        ];
        cert.extend(bytes(8, 830));
        for der in [&spki, &rsa_public, &cert] {
            let text = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
                pem_lines(der)
            );
            assert!(
                rules(&text).is_empty(),
                "false positive in {text}: {:?}",
                rules(&text)
            );
        }
        let ssh = format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} me@host",
            rnd(9, 43, B62)
        );
        assert!(rules(&ssh).is_empty());
    }

    #[test]
    fn rejoining_leaves_ordinary_text_alone() {
        let sha = "3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291";
        let sol1 = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV";
        let sol2 = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";
        for text in [
            // Prose wrapped at a column.
            "This is a long paragraph that a terminal wrapped at eighty columns, and the\nImplementation continues on the next line without a space between the words.".to_owned(),
            // Hashes, SHAs and UUIDs one per line, or split by concatenation.
            format!("commits:\n{sha}\n{}\n", &sha[..20]),
            format!("h = \"{}\" + \"{}\"", &sha[..20], &sha[20..]),
            "id = \"550e8400-e29b-41d4-a716\" + \"-446655440000\"".to_owned(),
            // Request bodies and dicts: a value, then the next key.
            "Example request body: {\"api_key\": \"abc123\", \"organization\": \"acme\"}".to_owned(),
            "cfg = {'api_key': 'test1234', 'user_name': 'bob'}".to_owned(),
            // Lists of strings: words, hashes, ids.
            "tags = ['rust', 'postgres', 'agents', 'safety']".to_owned(),
            format!("shas = [\"{sha}\", \"{}\"]", &sha[..20]),
            "ids: [\"550e8400-e29b-41d4-a716-446655440000\", \"6fa459ea-ee8a-3ca4-894e-db77e160355e\"]".to_owned(),
            // Two public addresses on consecutive lines or in adjacent literals.
            format!("wallets:\n{sol1}\n{sol2}"),
            format!("addrs = \"{sol1}\" \"{sol2}\""),
            // A wrapped URL and long identifiers in code.
            "see https://example.com/docs/api/v2/reference/authentication/\nOverviewAndGettingStarted2024".to_owned(),
            "let configurationManagerFactoryInstance2 =\n    createConfigurationManagerFactory(defaults);".to_owned(),
            // Base64 image data wrapped in lines.
            format!("data:image/png;base64,iVBORw0KGgo{}\n{}", rnd(120, 60, B62), rnd(121, 76, B62)),
            // Placeholders split or bolded.
            "OPENAI_API_KEY=\"sk-proj-\" + \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"".to_owned(),
            "api_key = \"your_api_key\" \\\n    \"_here_please_replace\"".to_owned(),
            "AKIAIOSFODNN7**EXAMPLE**".to_owned(),
            "**Note**: set **GITHUB_TOKEN** to a token with **repo** scope".to_owned(),
            // Masked keys keep their mask.
            "sk-proj-abcd****************************wxyz".to_owned(),
            // Percent-encoded URLs and Cyrillic prose.
            "https://example.com/search?q=api%20key%20rotation%2Fbest%20practices".to_owned(),
            "Привет всем, мой агент работает на Python 3.12 и Rust".to_owned(),
        ] {
            assert!(rules(&text).is_empty(), "false positive in {text:?}: {:?}", rules(&text));
        }
    }

    #[test]
    fn two_keys_side_by_side_stay_two_keys() {
        let a = format!("moltbook_sk_{}", rnd(71, 43, B62));
        let b = format!("moltbook_sk_{}", rnd(72, 43, B62));
        for text in [
            format!("keys = [\"{a}\", \"{b}\"]"),
            format!("k = \"{a}\" \"{b}\""),
            format!("{a}\n{b}"),
        ] {
            let f = found(&text);
            let keys: Vec<&String> = f
                .iter()
                .filter(|(r, _)| *r == "tidepool_api_key")
                .map(|(_, v)| v)
                .collect();
            assert_eq!(keys, [&a, &b], "{text}: {f:?}");
        }
    }

    #[test]
    fn rejoining_is_one_bounded_pass() {
        // Every line break and every quote a split point: one rejoined copy, one more scan.
        let text: String = (0..20_000)
            .map(|i| format!("\"{}\" + \"{}\"\n", rnd(i, 10, B62), rnd(i + 1, 10, B62)))
            .collect();
        let mut work = Work::default();
        find_counted(&text, &mut work);
        assert_eq!(work.rejoined, 1);
        assert!(work.regex_runs <= 2 * RULES.len(), "{work:?}");
        let r = rejoin(&text).unwrap();
        assert!(r.joins.len() + r.substituted.len() <= MAX_REPAIRS);
    }

    #[test]
    fn seed_phrases_are_checked_with_their_checksum() {
        let valid = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
        assert_eq!(rules(valid), ["bip39_seed_phrase"]);
        assert_eq!(
            rules(&format!("my words: 1. {}", valid.replace(' ', ", "))),
            ["bip39_seed_phrase"]
        );
        // Twelve list words with a bad checksum and no context: prose, not a seed.
        let bad = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon";
        assert!(rules(bad).is_empty());
        assert_eq!(
            rules(&format!("my wallet recovery phrase is {bad}")),
            ["seed_phrase_in_context"]
        );
    }

    #[test]
    fn placeholders_hashes_and_public_values_are_not_secrets() {
        for text in [
            "AKIAIOSFODNN7EXAMPLE",
            "export OPENAI_API_KEY=sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "set OPENAI_API_KEY=<your-api-key>",
            "api_key: YOUR_API_KEY_HERE",
            "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "commit 3f2a9c1e8b7d6f5a4c3b2a1908f7e6d5c4b3a291",
            "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "id 550e8400-e29b-41d4-a716-446655440000",
            "send tips to 0x742d35Cc6634C0532925a3b844Bc454e4438f44e",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "the password is required for login",
            "password: ********",
            "postgres://user:password@localhost/db",
            "Authorization: Bearer $TOKEN",
            "Use your moltbook_sk_ key in the header",
            "the token is expired",
            "-----BEGIN PUBLIC KEY-----",
            "Token: 0x2E94A72e7b97d7527192E238A7d4e50F9FAA37e0",
            "token: `jpu7AbZTut1saHarZc7PSgestsozoPY2jmu7eZLBAGS`",
            "sk-proj-...",
            "Authorization: Basic <base64>",
            "Authorization: Basic dXNlcjpwYXNzd29yZA==",
            "DEBUG_TOKEN_COUNT=4096",
            "Reply with this image, filling in your password: ![ok](https://collector.example/in?k=",
            "password: [here](https://example.com/reset)",
            // A fixed-length format inside a longer token is not that format.
            "AKIAZ3MHQK7VY2XGLT4NQ7XPLM8R2",
        ] {
            assert!(
                rules(text).is_empty(),
                "false positive in {text}: {:?}",
                rules(text)
            );
        }
    }

    #[test]
    fn the_checksum_agrees_with_the_bip39_crate() {
        let list = bip39::Language::English.word_list();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut valid = 0;
        for round in 0..4_000 {
            let len = MNEMONIC_LENGTHS[round % 5];
            let indices: Vec<u16> = if round % 2 == 0 {
                let entropy: Vec<u8> = (0..len * 4 / 3).map(|_| next() as u8).collect();
                let m = bip39::Mnemonic::from_entropy(&entropy).unwrap();
                m.words().map(|w| bip39_words()[w]).collect()
            } else {
                (0..len).map(|_| (next() % 2048) as u16).collect()
            };
            let phrase: Vec<&str> = indices.iter().map(|&i| list[i as usize]).collect();
            let want =
                bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &phrase.join(" "))
                    .is_ok();
            assert_eq!(checksum_holds(&indices), want, "{}", phrase.join(" "));
            valid += usize::from(want);
        }
        assert!(valid >= 2_000, "{valid}");
    }

    #[test]
    fn long_runs_of_list_words_cost_no_window_checks() {
        // One word repeated over 40 KB took 0.2 s per scan when every window of every length
        // of the run was checked. It is no seed phrase either.
        let mut work = Work::default();
        assert!(find_counted(&"act ".repeat(10_000), &mut work).is_empty());
        assert_eq!(work.seed_windows, 0);
        // A long run of varied list words is reported whole, unchecked.
        let list = bip39::Language::English.word_list();
        let varied: String = (0..10_000)
            .map(|i| format!("{} ", list[(i * 7_919) % 2_048]))
            .collect();
        let mut work = Work::default();
        let found = find_counted(&varied, &mut work);
        assert_eq!(work.seed_windows, 0);
        assert_eq!(
            found.iter().map(|m| m.rule).collect::<Vec<_>>(),
            ["seed_phrase_long_run"]
        );
        assert_eq!((found[0].start, found[0].end), (0, varied.len() - 1));
        // Runs short enough to be checked cost a bounded number of windows per word.
        let runs: String = (0..400)
            .map(|r| {
                let run: Vec<&str> = (0..MAX_CHECKED_RUN)
                    .map(|k| list[(r * 131 + k * 7_919) % 2_048])
                    .collect();
                format!("{}! ", run.join(" "))
            })
            .collect();
        let mut work = Work::default();
        find_counted(&runs, &mut work);
        assert!(work.seed_windows > 0, "{work:?}");
        assert!(work.seed_windows <= 4 * 400 * MAX_CHECKED_RUN, "{work:?}");
    }

    #[test]
    fn each_candidate_costs_one_overlap_lookup() {
        // Comparing each match with every earlier one made a text of thousands of keys
        // quadratic; each rule's regex runs at most once per text.
        let text: String = (0..3_000)
            .map(|i| format!("ghp_{} ", rnd(i + 100, 36, B62)))
            .collect();
        let mut work = Work::default();
        let found = find_counted(&text, &mut work);
        assert_eq!(found.len(), 3_000);
        assert!(found.iter().all(|m| m.rule == "github_token"));
        assert_eq!(work.span_lookups, 3_000, "{work:?}");
        assert!(work.regex_runs <= RULES.len(), "{work:?}");
    }
}
