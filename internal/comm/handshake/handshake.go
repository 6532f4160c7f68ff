// Package handshake authenticates every connection between strata processes: the dialer
// names its job and role, the listener answers with a fresh nonce, and the dialer proves it
// holds the shared token with an HMAC over the nonce. The token never crosses the wire.
package handshake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Proto is the protocol version; peers with another version are refused.
const Proto = "strata/1"

// ErrRefused is returned by Client when the listener refused the handshake.
var ErrRefused = errors.New("handshake refused")

// Hello is what a dialer says about itself.
type Hello struct {
	Proto        string `json:"proto"`
	Job          string `json:"job"`
	Role         string `json:"role"` // "data" or "store"
	From         int    `json:"from"` // node index
	Channel      int    `json:"channel"`
	NNodes       int    `json:"nnodes"`
	RanksPerNode int    `json:"ranks_per_node"`
}

type challenge struct {
	Nonce string `json:"nonce"`
}

type proof struct {
	MAC string `json:"mac"`
}

type verdict struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func mac(token, nonce string, h Hello) string {
	m := hmac.New(sha256.New, []byte(token))
	fmt.Fprintf(m, "%s|%s|%s|%s|%d|%d", nonce, h.Proto, h.Job, h.Role, h.From, h.Channel)
	return hex.EncodeToString(m.Sum(nil))
}

// WriteMsg writes v as a length-prefixed JSON message.
func WriteMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return err
	}
	return nil
}

// ReadMsg reads a length-prefixed JSON message of at most 64 KiB into v.
func ReadMsg(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 64<<10 {
		return fmt.Errorf("handshake message of %d bytes is too large (not a strata peer?)", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Client runs the dialer's side within deadline. On refusal the error carries the listener's
// reason and wraps ErrRefused.
func Client(c net.Conn, h Hello, token string, deadline time.Time) error {
	_ = c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	h.Proto = Proto
	if err := WriteMsg(c, h); err != nil {
		return fmt.Errorf("handshake: send hello: %w", err)
	}
	var ch challenge
	if err := ReadMsg(c, &ch); err != nil {
		return fmt.Errorf("handshake: read challenge: %w", err)
	}
	if err := WriteMsg(c, proof{MAC: mac(token, ch.Nonce, h)}); err != nil {
		return fmt.Errorf("handshake: send proof: %w", err)
	}
	var v verdict
	if err := ReadMsg(c, &v); err != nil {
		return fmt.Errorf("handshake: read verdict (the peer may have refused us): %w", err)
	}
	if !v.OK {
		return fmt.Errorf("%w by %s: %s", ErrRefused, c.RemoteAddr(), v.Error)
	}
	return nil
}

// Server runs the listener's side: it checks the protocol, job and token, then asks check
// (which may be nil) about the rest. It returns the dialer's Hello, or why it was refused
// (the dialer is told the same).
func Server(c net.Conn, job, token string, deadline time.Time, check func(Hello) error) (Hello, error) {
	_ = c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	var h Hello
	if err := ReadMsg(c, &h); err != nil {
		return h, fmt.Errorf("handshake: read hello: %w", err)
	}
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:])
	if err := WriteMsg(c, challenge{Nonce: nonce}); err != nil {
		return h, fmt.Errorf("handshake: send challenge: %w", err)
	}
	var p proof
	if err := ReadMsg(c, &p); err != nil {
		return h, fmt.Errorf("handshake: read proof: %w", err)
	}
	var why error
	switch {
	case h.Proto != Proto:
		why = fmt.Errorf("protocol %q, want %q (mixed strata versions?)", h.Proto, Proto)
	case h.Job != job:
		why = fmt.Errorf("job %q, want %q", h.Job, job)
	case !hmac.Equal([]byte(p.MAC), []byte(mac(token, nonce, h))):
		why = errors.New("wrong token (set the same STRATA_TOKEN on every node)")
	case check != nil:
		why = check(h)
	}
	v := verdict{OK: why == nil}
	if why != nil {
		v.Error = why.Error()
	}
	if err := WriteMsg(c, v); err != nil && why == nil {
		return h, fmt.Errorf("handshake: send verdict: %w", err)
	}
	if why != nil {
		return h, fmt.Errorf("%w: %v", ErrRefused, why)
	}
	return h, nil
}
