package gobrpc

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkClientCall measures one round trip over a shared connection,
// with calls from GOMAXPROCS goroutines.
func BenchmarkClientCall(b *testing.B) {
	srv, err := Serve("Test", newTestSvc(), []string{"127.0.0.1:0"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close(context.Background())
	c := NewClient(srv.Addrs()[0], 10*time.Second)
	defer c.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var got string
		for pb.Next() {
			if err := c.Call(context.Background(), "Test.Echo", "hello", &got); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPoolPick measures the request path's choice of a node.
func BenchmarkPoolPick(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint(n, "nodes"), func(b *testing.B) {
			s := &poolSnapshot{}
			total := 0
			for i := range n {
				total += i%3 + 1
				s.nodes = append(s.nodes, &poolNode{addr: fmt.Sprint(i)})
				s.cum = append(s.cum, total)
			}
			b.ReportAllocs()
			for b.Loop() {
				if s.pick() == nil {
					b.Fatal("no node")
				}
			}
		})
	}
}
