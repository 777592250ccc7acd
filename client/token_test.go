package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMintTokenClaimsAndBadInput(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := MintToken("alice", time.Minute, secret)
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "alice" || time.Until(claims.ExpiresAt.Time) > time.Minute || time.Until(claims.ExpiresAt.Time) < 50*time.Second {
		t.Fatalf("claims %+v", claims)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if tok, err := MintToken("bob", time.Minute, priv); err != nil || !strings.HasPrefix(tok, "eyJhbGciOiJFZERTQSI") {
		t.Fatalf("EdDSA: %q, %v", tok, err)
	}
	for name, f := range map[string]func() (string, error){
		"empty key":     func() (string, error) { return MintToken("", time.Minute, secret) },
		"no ttl":        func() (string, error) { return MintToken("a", 0, secret) },
		"short secret":  func() (string, error) { return MintToken("a", time.Minute, []byte("short")) },
		"string secret": func() (string, error) { return MintToken("a", time.Minute, string(secret)) },
		"public key":    func() (string, error) { return MintToken("a", time.Minute, priv.Public()) },
	} {
		if tok, err := f(); err == nil {
			t.Errorf("%s: minted %q", name, tok)
		}
	}
}
