package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"gopush/api"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{},                             // no key
		{"-key", "k", "-proto", "udp"}, // bad proto
		{"-key", "k", "-mid", "1e5"},   // mid not an integer
		{"-key", "k", "-pmid", "x"},
		{"-key", "k", "-heartbeat", "5s"}, // heartbeat below 30s
		{"-key", "k", "-n", "-1"},
		{"-key", "k", "extra"},
		{"-nosuchflag"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%q: nothing said on stderr", args)
		}
	}
}

// The command prints the stored backlog, then online messages, as JSON
// lines with exact mids, and stops after -n.
func TestPrintsMessages(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	subs := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		// *5, then five bulk strings: 11 lines.
		var req strings.Builder
		for range 11 {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			req.WriteString(line)
		}
		subs <- req.String()
		// 2^53+3: a float64 would round it.
		msg := `{"msg":{"b":2},"mid":9007199254740995,"gid":0}`
		conn.Write(api.AppendBulk([]byte(api.ReplyOK), []byte(msg)))
		io.Copy(io.Discard, conn)
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/1/server/get", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"ret":0,"data":{"server":%q}}`, l.Addr().String())
	})
	mux.HandleFunc("/1/msg/get", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("m") != "5" || r.FormValue("pm") != "6" || r.FormValue("k") != "Terry-Mao" {
			t.Errorf("/1/msg/get with %v", r.Form)
		}
		io.WriteString(w, `{"ret":0,"data":{"msgs":[{"msg":{"a":1},"mid":9007199254740993,"gid":0}]}}`)
	})
	web := httptest.NewServer(mux)
	defer web.Close()

	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := run(ctx, []string{"-web", web.URL, "-key", "Terry-Mao", "-token", "tk", "-mid", "5", "-pmid", "6", "-n", "2"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	want := `{"mid":9007199254740993,"gid":0,"msg":{"a":1}}` + "\n" +
		`{"mid":9007199254740995,"gid":0,"msg":{"b":2}}` + "\n"
	if out.String() != want {
		t.Errorf("output\n%s\nwant\n%s", out.String(), want)
	}
	if req := <-subs; req != "*5\r\n$3\r\nsub\r\n$9\r\nTerry-Mao\r\n$2\r\n30\r\n$2\r\ntk\r\n$5\r\n1.0.5\r\n" {
		t.Errorf("subscribe request %q", req)
	}
}
