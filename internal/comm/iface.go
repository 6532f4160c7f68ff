package comm

import (
	"fmt"
	"net"
	"strings"
)

// pickInterface chooses the address for inter-node traffic. spec follows NCCL_SOCKET_IFNAME:
// comma-separated prefixes, "=name" for exact names, a leading "^" to exclude. Without a
// spec, the interface that routes to the master wins, then the first non-loopback interface
// that is up, then loopback.
func pickInterface(spec, master string) (ip, name string, err error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", "", fmt.Errorf("list network interfaces: %w", err)
	}
	type cand struct{ name, ip string }
	var all []cand
	for _, inf := range ifs {
		if inf.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := inf.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				all = append(all, cand{inf.Name, ipn.IP.String()})
				break
			}
		}
	}
	if spec != "" {
		for _, c := range all {
			if matchIfname(spec, c.name) {
				return c.ip, c.name, nil
			}
		}
		var have []string
		for _, c := range all {
			have = append(have, c.name+" ("+c.ip+")")
		}
		return "", "", fmt.Errorf("STRATA_SOCKET_IFNAME=%q matches no interface that is up with an IPv4 address; this machine has: %s", spec, strings.Join(have, ", "))
	}
	if master != "" {
		if host, _, err := net.SplitHostPort(master); err == nil {
			if c, err := net.Dial("udp", net.JoinHostPort(host, "9")); err == nil {
				local := c.LocalAddr().(*net.UDPAddr).IP.String()
				_ = c.Close()
				for _, cd := range all {
					if cd.ip == local {
						return cd.ip, cd.name, nil
					}
				}
			}
		}
	}
	for _, c := range all {
		if !strings.HasPrefix(c.ip, "127.") {
			return c.ip, c.name, nil
		}
	}
	return "127.0.0.1", "lo", nil
}

func ifaceHow(spec, master string) string {
	switch {
	case spec != "":
		return "STRATA_SOCKET_IFNAME=" + spec
	case master != "":
		return "route to master " + master
	}
	return "first interface up"
}

// matchIfname applies an NCCL_SOCKET_IFNAME-style spec to one interface name.
func matchIfname(spec, name string) bool {
	exclude := strings.HasPrefix(spec, "^")
	spec = strings.TrimPrefix(spec, "^")
	hit := false
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if exact, ok := strings.CutPrefix(p, "="); ok {
			hit = hit || name == exact
		} else {
			hit = hit || strings.HasPrefix(name, p)
		}
	}
	return hit != exclude
}
