package gobrpc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"gopush/internal/connlimit"
	"io"
	"net"
	"net/netip"
	"time"
)

// The node handshake (docs/security.md) proves to both ends of a
// connection that the other knows the cluster's shared secret, before any
// gob byte is sent. The client speaks first:
//
//	client → server  "GPRPC1 " + hex(16-byte client nonce) + "\n"
//	server → client  hex(16-byte server nonce) + " " + hex(HMAC-SHA256(secret, "S" + cn + sn)) + "\n"
//	client → server  hex(HMAC-SHA256(secret, "C" + cn + sn)) + "\n"
//
// Every line has a fixed length, so neither side reads more than it
// expects. A peer that fails is disconnected without an answer. Nonces from
// both sides make a recorded exchange useless on another connection.
//
// gopush-cluster 1.0.5 nodes speak plain net/rpc and cannot do this: their
// addresses go in Options.Legacy, and connections from or to them skip the
// handshake.

const (
	handshakeMagic = "GPRPC1 "
	nonceLen       = 16
)

// ErrHandshake is returned (wrapped) when a peer fails the node handshake.
var ErrHandshake = errors.New("gobrpc: node handshake failed")

var errMalformed = errors.New("malformed line")

func newNonce() ([]byte, error) {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

func proof(secret []byte, side string, cn, sn []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(side))
	h.Write(cn)
	h.Write(sn)
	return h.Sum(nil)
}

// readLine reads exactly n bytes, the last of them a newline, and returns
// the others.
func readLine(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n-1] != '\n' {
		return nil, errMalformed
	}
	return buf[:n-1], nil
}

func decodeHex(s []byte, n int) ([]byte, error) {
	b := make([]byte, n)
	if len(s) != 2*n {
		return nil, fmt.Errorf("%w: malformed line", ErrHandshake)
	}
	if _, err := hex.Decode(b, s); err != nil {
		return nil, fmt.Errorf("%w: malformed line", ErrHandshake)
	}
	return b, nil
}

// serverHandshake runs the server's side on conn within timeout.
func serverHandshake(conn net.Conn, secret []byte, timeout time.Duration) error {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	line, err := readLine(conn, len(handshakeMagic)+2*nonceLen+1)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if string(line[:len(handshakeMagic)]) != handshakeMagic {
		return fmt.Errorf("%w: the peer did not start the handshake (a 1.0.5 node not listed in rpc.legacy, or no rpc.secret?)", ErrHandshake)
	}
	cn, err := decodeHex(line[len(handshakeMagic):], nonceLen)
	if err != nil {
		return err
	}
	sn, err := newNonce()
	if err != nil {
		return err
	}
	out := hex.EncodeToString(sn) + " " + hex.EncodeToString(proof(secret, "S", cn, sn)) + "\n"
	if _, err := io.WriteString(conn, out); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	line, err = readLine(conn, 2*sha256.Size+1)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	got, err := decodeHex(line, sha256.Size)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, proof(secret, "C", cn, sn)) {
		return fmt.Errorf("%w: the peer does not know the secret", ErrHandshake)
	}
	return nil
}

// clientHandshake runs the client's side on conn within timeout.
func clientHandshake(conn net.Conn, secret []byte, timeout time.Duration) error {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	cn, err := newNonce()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(conn, handshakeMagic+hex.EncodeToString(cn)+"\n"); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	line, err := readLine(conn, 2*nonceLen+1+2*sha256.Size+1)
	if err != nil {
		return fmt.Errorf("%w: %w (a peer without rpc.secret, or a 1.0.5 node not listed in rpc.legacy?)", ErrHandshake, err)
	}
	sn, err := decodeHex(line[:2*nonceLen], nonceLen)
	if err != nil {
		return err
	}
	got, err := decodeHex(line[2*nonceLen+1:], sha256.Size)
	if err != nil || line[2*nonceLen] != ' ' {
		return fmt.Errorf("%w: malformed line", ErrHandshake)
	}
	if !hmac.Equal(got, proof(secret, "S", cn, sn)) {
		return fmt.Errorf("%w: the peer does not know the secret", ErrHandshake)
	}
	if _, err := io.WriteString(conn, hex.EncodeToString(proof(secret, "C", cn, sn))+"\n"); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return nil
}

// Options are the hardening settings of a Server or Client. The zero value
// behaves as 1.0.5 did, except that messages over DefaultMaxMsg are
// refused.
type Options struct {
	// MaxMsg is the largest gob message read (requests on a server,
	// answers on a client); 0: DefaultMaxMsg.
	MaxMsg int
	// Idle: a server closes a connection that sends nothing for this
	// long; a client redials a connection unused for half of it rather
	// than risk a call on one the server is closing. 0: never.
	Idle time.Duration
	// Allow lists the networks a server accepts connections from; empty:
	// any.
	Allow []netip.Prefix
	// MaxConns caps a server's open connections; 0: no cap.
	MaxConns int
	// Secret turns the node handshake on; empty: off.
	Secret []byte
	// Legacy lists the networks of 1.0.5 peers, served and called without
	// the handshake.
	Legacy []netip.Prefix
	// HandshakeTimeout bounds the handshake; 0: 5 s.
	HandshakeTimeout time.Duration
}

func (o *Options) handshakeTimeout() time.Duration {
	if o.HandshakeTimeout > 0 {
		return o.HandshakeTimeout
	}
	return 5 * time.Second
}

// needsHandshake reports whether a connection with peer ip must do the
// handshake.
func (o *Options) needsHandshake(ip netip.Addr) bool {
	if len(o.Secret) == 0 {
		return false
	}
	return !connlimit.InAny(o.Legacy, ip)
}
