#!/usr/bin/env bash
# mint-token.sh KEY [SECONDS]: print a signed subscriber token for KEY,
# valid SECONDS (default 3600), for comets with channel.token.mode = "jwt"
# (docs/security.md). Needs only openssl.
#
#   GOPUSH_TOKEN_SECRET=<channel.token.secret> scripts/mint-token.sh alice      # HS256
#   GOPUSH_TOKEN_KEY=ed25519.pem scripts/mint-token.sh alice 600                # EdDSA
#
# KEY must not contain " or \ (it is written into JSON as is).
set -euo pipefail
key=${1:?usage: mint-token.sh KEY [SECONDS]}
ttl=${2:-3600}
case $key in *'"'* | *'\'*) echo "mint-token.sh: the key must not contain \" or \\" >&2; exit 2 ;; esac

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

if [ -n "${GOPUSH_TOKEN_KEY:-}" ]; then alg=EdDSA; else alg=HS256; fi
h=$(printf '{"alg":"%s","typ":"JWT"}' "$alg" | b64url)
p=$(printf '{"sub":"%s","exp":%d}' "$key" $(($(date +%s) + ttl)) | b64url)
if [ "$alg" = EdDSA ]; then
	tmp=$(mktemp)
	trap 'rm -f "$tmp"' EXIT
	printf '%s.%s' "$h" "$p" >"$tmp"
	s=$(openssl pkeyutl -sign -inkey "$GOPUSH_TOKEN_KEY" -rawin -in "$tmp" | b64url)
else
	: "${GOPUSH_TOKEN_SECRET:?set GOPUSH_TOKEN_SECRET (HS256) or GOPUSH_TOKEN_KEY (EdDSA private key PEM)}"
	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$GOPUSH_TOKEN_SECRET" -binary | b64url)
fi
printf '%s.%s.%s\n' "$h" "$p" "$s"
