package testenv

import (
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The datacenter harness itself: hosts reach each other on the bridge and
// nothing else (no default route), Cut and Isolate break exactly the links
// they name and Heal and Join restore them, processes run inside a host,
// and everything is gone when the test ends.
func TestDatacenterHostsCutAndHeal(t *testing.T) {
	var nsNames []string
	var bridge string
	t.Run("datacenter", func(t *testing.T) {
		dc := NewDatacenter(t)
		a, b, c := dc.AddHost("a"), dc.AddHost("b"), dc.AddHost("c")
		nsNames = []string{a.NS, b.NS, c.NS}
		bridge = dc.bridge

		out, err := exec.Command("ip", "netns", "exec", a.NS, "ip", "route").Output()
		if err != nil || strings.Contains(string(out), "default") {
			t.Fatalf("routes in host a: %s (%v), want no default route", out, err)
		}

		ln, err := b.Listen(":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hi"))
				c.Close()
			}
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		target := net.JoinHostPort(b.IP, port)
		reach := func(from *Host) bool {
			conn, err := from.Dial(target, 500*time.Millisecond)
			if err != nil {
				return false
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			got, _ := io.ReadAll(conn)
			return string(got) == "hi"
		}
		check := func(what string, from *Host, want bool) {
			t.Helper()
			if got := reach(from); got != want {
				t.Errorf("%s: %s reaches b: %v, want %v", what, from.Name, got, want)
			}
		}
		check("start", a, true)
		check("start", c, true)
		a.Cut(b)
		check("a cut from b", a, false)
		check("a cut from b", c, true)
		a.Heal(b)
		check("healed", a, true)
		b.Isolate()
		check("b isolated", a, false)
		check("b isolated", c, false)
		b.Join()
		check("b joined", c, true)

		p := a.Start("sleep", "60")
		p.Signal(syscall.SIGSTOP)
		p.Signal(syscall.SIGCONT)
		p.Kill()
		if !p.Exited() {
			t.Error("process on a still runs after Kill")
		}
	})
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range nsNames {
		if strings.Contains(string(out), ns) {
			t.Errorf("namespace %s left after the test", ns)
		}
	}
	if bridge != "" && exec.Command("ip", "link", "show", bridge).Run() == nil {
		t.Errorf("bridge %s left after the test", bridge)
	}
}
