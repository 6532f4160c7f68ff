//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
)

// DialContext needs Linux network namespaces; Require skips every test that could reach it.
func (c *Cluster) DialContext(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("netns: network namespaces need Linux")
	}
}
