package comet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mintWithScript runs scripts/mint-token.sh (the documented shell way to
// mint tokens) with env and returns the token.
func mintWithScript(t *testing.T, key string, ttl string, env ...string) string {
	t.Helper()
	cmd := exec.Command("../scripts/mint-token.sh", key, ttl)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mint-token.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Tokens minted with openssl by scripts/mint-token.sh verify, with HS256
// and with EdDSA (a key made by openssl too), for their key only.
func TestShellMintedTokensVerify(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (scripts/test.sh installs it)")
	}
	hs, err := newTokenVerifier("HS256", testSecret, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := mintWithScript(t, "alice", "60", "GOPUSH_TOKEN_SECRET="+testSecret)
	if !hs.verify("alice", tok) || hs.verify("bob", tok) {
		t.Fatalf("HS256 token %s: verify alice %v, bob %v", tok, hs.verify("alice", tok), hs.verify("bob", tok))
	}
	if old := mintWithScript(t, "alice", "-60", "GOPUSH_TOKEN_SECRET="+testSecret); hs.verify("alice", old) {
		t.Fatal("an expired shell token verified")
	}

	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "ed25519.pem"), filepath.Join(dir, "ed25519.pub.pem")
	for _, args := range [][]string{
		{"genpkey", "-algorithm", "ed25519", "-out", priv},
		{"pkey", "-in", priv, "-pubout", "-out", pub},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	ed, err := newTokenVerifier("EdDSA", "", pub)
	if err != nil {
		t.Fatal(err)
	}
	tok = mintWithScript(t, "bob", "60", "GOPUSH_TOKEN_KEY="+priv)
	if !ed.verify("bob", tok) {
		t.Fatalf("EdDSA shell token %s does not verify", tok)
	}
	if hs.verify("bob", tok) {
		t.Fatal("an EdDSA token verified as HS256")
	}
}
