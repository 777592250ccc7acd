package comet

import (
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gopush/api"
)

// Signed tokens (channel.token.mode = "jwt", docs/security.md): a token is
// a JWT whose "sub" is the key and whose "exp" is in the future, signed
// with HS256 (the secret channel.token.secret, shared with whoever mints
// tokens) or with EdDSA or RS256 (the backend keeps the private key; comets
// hold the public key, channel.token.keyfile). Any comet verifies it on its
// own, so a token outlives a comet's restart and a key's move to another
// comet, and comets keep nothing per token.

// maxTokenLen bounds a token comet will look at; a longer one is refused
// (-a) without being parsed. JWTs of gopush are well under 1 KB.
const maxTokenLen = api.MaxSubArgLen

// tokenLeeway is the clock difference tolerated on "exp" and "nbf".
const tokenLeeway = 5 * time.Second

// tokenVerifier checks signed tokens. It is safe for concurrent use.
type tokenVerifier struct {
	key    any
	parser *jwt.Parser
}

// newTokenVerifier builds a verifier for alg with the HS256 secret or the
// PEM public key in keyFile.
func newTokenVerifier(alg, secret, keyFile string) (*tokenVerifier, error) {
	v := &tokenVerifier{parser: jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
	)}
	switch alg {
	case "HS256":
		v.key = []byte(secret)
		return v, nil
	case "EdDSA", "RS256":
	default:
		return nil, fmt.Errorf("channel.token.alg: unknown algorithm %q", alg)
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("channel.token.keyfile: %w", err)
	}
	if alg == "EdDSA" {
		k, err := jwt.ParseEdPublicKeyFromPEM(pem)
		if err != nil {
			return nil, fmt.Errorf("channel.token.keyfile %s: not an Ed25519 public key: %w", keyFile, err)
		}
		v.key = k.(ed25519.PublicKey)
		return v, nil
	}
	k, err := jwt.ParseRSAPublicKeyFromPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("channel.token.keyfile %s: not an RSA public key: %w", keyFile, err)
	}
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("channel.token.keyfile %s: RSA key of %d bits, want 2048 or more", keyFile, k.N.BitLen())
	}
	v.key = (*rsa.PublicKey)(k)
	return v, nil
}

// verify reports whether token is a valid, unexpired token for key.
func (v *tokenVerifier) verify(key, token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	var claims jwt.RegisteredClaims
	t, err := v.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil || !t.Valid {
		return false
	}
	return claims.Subject == key
}
