package comm

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; match with errors.Is.
var (
	// ErrAborted wraps the cause once a communicator has been aborted: every later call
	// returns it, because a failed collective leaves peers in unknown states.
	ErrAborted = errors.New("comm: communicator aborted")
	// ErrTimeout marks a wait that outlived its deadline.
	ErrTimeout = errors.New("timed out")
	// ErrMismatch marks collectives called with different arguments on different ranks.
	ErrMismatch = errors.New("collective arguments differ across ranks")
	// ErrPeerDown marks a peer whose connection broke (process died, link down, reset).
	ErrPeerDown = errors.New("peer connection lost")
	// ErrBadArgument marks an invalid call on this rank alone.
	ErrBadArgument = errors.New("invalid argument")
	// ErrUnauthorized marks a handshake with the wrong job id or token.
	ErrUnauthorized = errors.New("handshake refused")
)

// PeerError names the peer a failure is about: its rank, node and address.
type PeerError struct {
	Rank int    // global rank of the peer, or -1 when the failure is about a whole node
	Node int    // node of the peer
	Addr string // network address of the peer's node, if known
	Err  error
}

func (e *PeerError) Error() string {
	who := fmt.Sprintf("node %d", e.Node)
	if e.Rank >= 0 {
		who = fmt.Sprintf("rank %d (node %d", e.Rank, e.Node)
		if e.Addr != "" {
			who += ", " + e.Addr
		}
		who += ")"
	} else if e.Addr != "" {
		who += " (" + e.Addr + ")"
	}
	return who + ": " + e.Err.Error()
}

func (e *PeerError) Unwrap() error { return e.Err }

// timeoutError is what a wait returns when its context expires while a peer owes data.
func timeoutError(d time.Duration, what string) error {
	if d > 0 {
		return fmt.Errorf("%w after %v waiting for %s", ErrTimeout, d.Round(time.Millisecond), what)
	}
	return fmt.Errorf("%w waiting for %s", ErrTimeout, what)
}
