package client

import (
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MintToken makes a signed subscriber token for key, valid for ttl, that
// comets with channel.token.mode = "jwt" accept (docs/security.md). It is
// for backends: the token is a JWT {"sub": key, "iat": now, "exp": now +
// ttl} signed with
//
//   - HS256 when signingKey is a []byte: the comets' channel.token.secret;
//   - EdDSA when it is an ed25519.PrivateKey, RS256 when it is an
//     *rsa.PrivateKey: the comets hold only the public key
//     (channel.token.keyfile).
//
// Hand the token to the client, which sends it as its subscribe token.
func MintToken(key string, ttl time.Duration, signingKey any) (string, error) {
	if key == "" {
		return "", errors.New("client: MintToken: empty key")
	}
	if ttl <= 0 {
		return "", errors.New("client: MintToken: ttl must be positive")
	}
	var method jwt.SigningMethod
	switch k := signingKey.(type) {
	case []byte:
		if len(k) < 32 {
			return "", errors.New("client: MintToken: an HS256 secret must be at least 32 bytes")
		}
		method = jwt.SigningMethodHS256
	case ed25519.PrivateKey:
		method = jwt.SigningMethodEdDSA
	case *rsa.PrivateKey:
		method = jwt.SigningMethodRS256
	default:
		return "", fmt.Errorf("client: MintToken: unsupported key type %T", signingKey)
	}
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   key,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(signingKey)
	if err != nil {
		return "", fmt.Errorf("client: MintToken: %w", err)
	}
	return s, nil
}
