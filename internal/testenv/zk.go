package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZKConn returns a plain go-zookeeper connection to the shared ZooKeeper,
// with a session established, closed when the test ends. Tests use it to
// look at and tamper with the tree behind a daemon's back.
func ZKConn(t testing.TB) *zk.Conn {
	t.Helper()
	addr := ZK(t)
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZK{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zookeeper %s: %v", addr, err)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("zookeeper %s: connection closed before a session was made", addr)
			}
			if ev.State == zk.StateHasSession {
				go drain(events)
				return conn
			}
		case <-deadline:
			t.Fatalf("zookeeper %s: no session after 20s", addr)
		}
	}
}

func drain(events <-chan zk.Event) {
	for range events {
	}
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// ZKDeleteAll deletes path and everything under it; a missing path is fine.
// A child created meanwhile (a daemon registering again while its node is
// deleted, as a comet does after a session expiry) makes it try again, for
// up to 10 s.
func ZKDeleteAll(t testing.TB, conn *zk.Conn, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := deleteAll(conn, path)
		if err == nil {
			return
		}
		if !errors.Is(err, zk.ErrNotEmpty) || time.Now().After(deadline) {
			t.Fatalf("delete %s: %v", path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func deleteAll(conn *zk.Conn, path string) error {
	children, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteAll(conn, path+"/"+c); err != nil {
			return err
		}
	}
	err = conn.Delete(path, -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

// ExpireSession ends a ZooKeeper session that belongs to someone else (a
// daemon under test) the way an expiry would: ZooKeeper deletes the
// session's ephemeral nodes and the owner learns, when it reconnects, that
// its session has expired. It takes the session over with its id and
// password and closes it, then checks that the session is gone.
func ExpireSession(t testing.TB, zkAddr string, sessionID int64, passwd []byte) {
	t.Helper()
	if sessionID == 0 || len(passwd) == 0 {
		t.Fatalf("ExpireSession: need a session id and password (got %#x, %d bytes)", sessionID, len(passwd))
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		gone, err := closeSession(zkAddr, sessionID, passwd)
		if err == nil && gone {
			return
		}
		// Not yet: the owner may have taken its session back in between
		// (it reconnects at once when we take it over). Try again.
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ExpireSession: session %#x still alive after 30s", sessionID)
}

// closeSession connects with the session's id and password and, in the
// same write, asks to close it. It reports whether the server already knew
// the session as expired.
func closeSession(addr string, id int64, passwd []byte) (gone bool, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))

	// connect request: protocol version, last zxid, timeout ms, session id, password
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 30000)
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	msg = append(msg, req...)
	// close request header: xid, opcode -11 (closeSession)
	msg = binary.BigEndian.AppendUint32(msg, 8)
	msg = binary.BigEndian.AppendUint32(msg, 1)
	msg = binary.BigEndian.AppendUint32(msg, uint32(0xfffffff5))
	if _, err := c.Write(msg); err != nil {
		return false, err
	}

	resp, err := readFrame(c)
	if err != nil {
		return false, err
	}
	if len(resp) < 16 {
		return false, fmt.Errorf("short connect response (%d bytes)", len(resp))
	}
	if got := int64(binary.BigEndian.Uint64(resp[8:16])); got == 0 {
		return true, nil // expired already
	} else if got != id {
		return false, fmt.Errorf("server gave session %#x, not %#x", got, id)
	}
	// Answer to the close request: xid, zxid, err.
	resp, err = readFrame(c)
	if err != nil {
		return false, err
	}
	if len(resp) < 16 || int32(binary.BigEndian.Uint32(resp[12:16])) != 0 {
		return false, fmt.Errorf("close session refused")
	}
	return false, nil // closed now; the next round confirms it is gone
}

func readFrame(r io.Reader) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > 1<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}
