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
