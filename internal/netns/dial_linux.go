package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext returns a dialer whose connections start inside node i's namespace, so a test
// in the host namespace can talk to a server bound there (an HTTP client's Transport takes
// it as DialContext). A socket belongs to the namespace of the thread that created it; the
// dial runs on a locked thread that enters the node's namespace and returns to its own
// afterwards (the thread may be the process's main one, which /proc shows as the process's
// namespace: left there, `ip netns pids` would count this process as the node's). If it
// cannot return, the thread stays locked and dies with its goroutine.
func (c *Cluster) DialContext(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	ns := "/run/netns/" + c.NS(i)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("netns: %w", err)}
				return
			}
			defer home.Close()
			f, err := os.Open(ns)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("netns: %w", err)}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("netns: entering %s: %w", c.NS(i), err)}
				return
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			ch <- result{conn, err}
		}()
		r := <-ch
		return r.conn, r.err
	}
}
