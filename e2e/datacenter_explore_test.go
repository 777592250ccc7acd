package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

var explore = flag.Bool("dc.explore", false, "start a datacenter cluster and keep it until interrupted (make datacenter)")

// TestDatacenterExplore is not a test but the `make datacenter` tool: with
// -dc.explore it starts the cluster of the datacenter tests (a three-server
// ZooKeeper ensemble, Redis and a message node, two comets, two webs, each
// on a host of its own), prints where everything is, and keeps it until
// Ctrl-C, then removes it all.
func TestDatacenterExplore(t *testing.T) {
	if !*explore {
		t.Skip("a tool, not a test: run `make datacenter`")
	}
	c := startDCCluster(t, 3)
	c.waitRing(t)
	fmt.Fprintf(os.Stderr, "\ndatacenter %s ready; the test process is %s on the bridge\n", c.dc.Bridge(), c.dc.GatewayIP())
	for _, h := range c.dc.Hosts() {
		fmt.Fprintf(os.Stderr, "  %-8s %-15s ip netns exec %s bash\n", h.Name, h.IP, h.NS)
	}
	fmt.Fprintf(os.Stderr, "web1 http://%s  admin %s\nweb2 http://%s  admin %s\nZooKeeper %v\n",
		c.web1.Addr(8090), c.web1Admin, c.web2.Addr(8090), c.web2Admin, c.zk)
	fmt.Fprintf(os.Stderr, "cut a link:  ip netns exec <ns> ip route add prohibit <ip>/32\nCtrl-C removes everything.\n")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}
