package store

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/strata-ai/strata/internal/comm/handshake"
)

func testStores(t *testing.T) map[string]func() (Store, Store) {
	return map[string]func() (Store, Store){
		"mem": func() (Store, Store) { m := NewMem(); return m, m },
		"tcp": func() (Store, Store) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := Serve(ln, "job", "tok", nil)
			t.Cleanup(func() { srv.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, err := Dial(ctx, srv.Addr(), "job", "tok")
			if err != nil {
				t.Fatal(err)
			}
			b, err := Dial(ctx, srv.Addr(), "job", "tok")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close(); b.Close() })
			return a, b
		},
	}
}

// TestGetWaitsForSet: a Get issued before the Set returns the value once it is set.
func TestGetWaitsForSet(t *testing.T) {
	for name, mk := range testStores(t) {
		t.Run(name, func(t *testing.T) {
			a, b := mk()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got := make(chan string, 1)
			go func() {
				v, err := b.Get(ctx, "node/1")
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- string(v)
			}()
			if err := a.Set(ctx, "node/1", []byte("10.77.0.2:4000")); err != nil {
				t.Fatal(err)
			}
			if v := <-got; v != "10.77.0.2:4000" {
				t.Fatalf("Get returned %q", v)
			}
			short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel2()
			if _, err := b.Get(short, "never"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Get of a missing key: want a deadline error, got %v", err)
			}
			// an exchange cut by a deadline leaves the client usable
			if err := b.Set(ctx, "after", []byte("ok")); err != nil {
				t.Fatalf("Set after a timed-out Get: %v", err)
			}
			if v, err := a.Get(ctx, "after"); err != nil || string(v) != "ok" {
				t.Fatalf("Get after a timed-out Get: %q, %v", v, err)
			}
		})
	}
}

// TestStoreRefusesWrongToken: a client with the wrong token is refused with the reason.
func TestStoreRefusesWrongToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln, "job", "tok", nil)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, srv.Addr(), "job", "nope")
	if !errors.Is(err, handshake.ErrRefused) || !strings.Contains(err.Error(), "token") {
		t.Fatalf("want a refusal naming the token, got %v", err)
	}
	_, err = Dial(ctx, srv.Addr(), "other-job", "tok")
	if !errors.Is(err, handshake.ErrRefused) || !strings.Contains(err.Error(), "job") {
		t.Fatalf("want a refusal naming the job, got %v", err)
	}
}

// chanListener hands the store Server connections the test accepted itself.
type chanListener struct {
	conns chan net.Conn
	addr  net.Addr
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// TestClientRecoversFromCutExchange: the first connection's peer authenticates, takes a Get and
// never answers. The Get fails with the caller's deadline (not a bare i/o timeout), and the
// next call starts on a fresh connection instead of reading the old one's late reply.
func TestClientRecoversFromCutExchange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := &chanListener{conns: make(chan net.Conn), addr: ln.Addr(), done: make(chan struct{})}
	srv := Serve(cl, "job", "tok", nil)
	defer srv.Close()
	stalled := make(chan net.Conn, 1)
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n > 0 {
				select {
				case cl.conns <- c:
				case <-cl.done:
					c.Close()
					return
				}
				continue
			}
			if _, err := handshake.Server(c, "job", "tok", time.Now().Add(5*time.Second), nil); err != nil {
				c.Close()
				continue
			}
			stalled <- c // read nothing, answer nothing
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String(), "job", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer func() {
		select {
		case s := <-stalled:
			s.Close()
		default:
		}
	}()
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := c.Get(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get from a peer that never answers: want the deadline, got %v", err)
	}
	if err := c.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("Set after the cut exchange: %v", err)
	}
	if v, err := c.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get after the cut exchange: %q, %v", v, err)
	}
}

// TestClientAfterMasterGone: once the master is gone, a call fails promptly, naming it, even
// with no deadline of its own, and Close does not wait behind it.
func TestClientAfterMasterGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Serve(ln, "job", "tok", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Addr(), "job", "tok")
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	done := make(chan error, 2)
	go func() {
		done <- c.Set(context.Background(), "k", []byte("v")) // the exchange fails
		done <- c.Set(context.Background(), "k", []byte("v")) // the redial fails
	}()
	for range 2 {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), srv.Addr()) {
				t.Fatalf("Set with the master gone: %v, want an error naming %s", err, srv.Addr())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Set with the master gone did not return")
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
