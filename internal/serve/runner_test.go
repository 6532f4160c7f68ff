package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/strata-ai/strata/internal/engine"
	"github.com/strata-ai/strata/internal/kernels"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction(kernels.HelperFunc))
}

// fake emits one token per request per step, finishing after n; failNext makes one Step fail.
type fake struct {
	mu       sync.Mutex
	n        int
	reqs     map[string]int
	order    []string
	aborted  []string
	failNext bool
	refuse   string
	failAt   map[string]int // a request ends with an error event in place of this token
}

func (f *fake) Add(r engine.Request) error {
	if r.ID == f.refuse {
		return errors.New("refused")
	}
	if f.reqs == nil {
		f.reqs = map[string]int{}
	}
	f.reqs[r.ID] = 0
	f.order = append(f.order, r.ID)
	return nil
}

func (f *fake) Abort(id string) bool {
	f.mu.Lock()
	f.aborted = append(f.aborted, id)
	f.mu.Unlock()
	_, ok := f.reqs[id]
	delete(f.reqs, id)
	return ok
}

func (f *fake) Step() ([]engine.Event, error) {
	f.mu.Lock()
	fail, failAt := f.failNext, f.failAt
	f.failNext = false
	f.mu.Unlock()
	if fail {
		return nil, errors.New("node 1 is gone")
	}
	var evs []engine.Event
	for _, id := range f.order {
		k, ok := f.reqs[id]
		if !ok {
			continue
		}
		f.reqs[id] = k + 1
		ev := engine.Event{ID: id, Token: k}
		if at, ok := failAt[id]; ok && at == k {
			ev = engine.Event{ID: id, Token: -1, Finished: true, Reason: "error", Err: fmt.Errorf("request %s: logits are NaN", id)}
			delete(f.reqs, id)
		} else if k+1 == f.n {
			ev.Finished, ev.Reason = true, "length"
			delete(f.reqs, id)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func (f *fake) Pending() int        { return len(f.reqs) }
func (f *fake) Stuck() bool         { return false }
func (f *fake) Stats() engine.Stats { return engine.Stats{Running: len(f.reqs)} }

func start(t *testing.T, eng Engine) (*Runner, func()) {
	r := NewRunner(eng)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	return r, func() { cancel(); <-done }
}

func drain(t *testing.T, s *Stream) ([]int, error) {
	t.Helper()
	var toks []int
	for {
		evs, done, err := s.Next(context.Background())
		for _, ev := range evs {
			toks = append(toks, ev.Token)
		}
		if done {
			return toks, err
		}
	}
}

func TestRunnerDeliversInOrder(t *testing.T) {
	r, stop := start(t, &fake{n: 5})
	defer stop()
	var streams []*Stream
	for i := range 3 {
		s, err := r.Submit(context.Background(), engine.Request{ID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	for _, s := range streams {
		toks, err := drain(t, s)
		if err != nil || fmt.Sprint(toks) != "[0 1 2 3 4]" {
			t.Fatalf("%s: %v %v", s.ID, toks, err)
		}
	}
}

func TestRunnerFailures(t *testing.T) {
	cases := []struct {
		name string
		n    int // tokens per request
		run  func(t *testing.T, r *Runner, f *fake)
	}{
		{"refused request fails at submit", 3, func(t *testing.T, r *Runner, f *fake) {
			if _, err := r.Submit(context.Background(), engine.Request{ID: "bad"}); err == nil {
				t.Fatal("no error")
			}
		}},
		{"abort ends the stream and reaches the engine", 1 << 30, func(t *testing.T, r *Runner, f *fake) {
			s, err := r.Submit(context.Background(), engine.Request{ID: "a"})
			if err != nil {
				t.Fatal(err)
			}
			r.Abort("a")
			if _, err := drain(t, s); err == nil {
				t.Fatal("aborted stream ended without an error")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.aborted) == 0 || f.aborted[0] != "a" {
				t.Fatalf("engine aborts: %v", f.aborted)
			}
		}},
		{"a failed step fails running requests, and the runner goes on", 3, func(t *testing.T, r *Runner, f *fake) {
			f.mu.Lock()
			f.failNext = true
			f.mu.Unlock()
			s, err := r.Submit(context.Background(), engine.Request{ID: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := drain(t, s); err == nil || err.Error() != "node 1 is gone" {
				t.Fatalf("stream error %v", err)
			}
			s, err = r.Submit(context.Background(), engine.Request{ID: "y"})
			if err != nil {
				t.Fatal(err)
			}
			if toks, err := drain(t, s); err != nil || len(toks) != 3 {
				t.Fatalf("after the failure: %v %v", toks, err)
			}
			if r.Healthy() != nil {
				t.Fatalf("healthy after a good step: %v", r.Healthy())
			}
		}},
		{"a request the engine fails ends with its error after its tokens, and the others go on", 4, func(t *testing.T, r *Runner, f *fake) {
			f.mu.Lock()
			f.failAt = map[string]int{"sick": 2}
			f.mu.Unlock()
			sick, err := r.Submit(context.Background(), engine.Request{ID: "sick"})
			if err != nil {
				t.Fatal(err)
			}
			well, err := r.Submit(context.Background(), engine.Request{ID: "well"})
			if err != nil {
				t.Fatal(err)
			}
			if toks, err := drain(t, sick); err == nil || err.Error() != "request sick: logits are NaN" || fmt.Sprint(toks) != "[0 1]" {
				t.Fatalf("failed request: %v %v", toks, err)
			}
			if toks, err := drain(t, well); err != nil || fmt.Sprint(toks) != "[0 1 2 3]" {
				t.Fatalf("its neighbour: %v %v", toks, err)
			}
			if r.Healthy() != nil {
				t.Fatalf("one request's failure marked the engine unhealthy: %v", r.Healthy())
			}
		}},
		{"replace fails the old requests and serves new ones", 3, func(t *testing.T, r *Runner, f *fake) {
			r.Replace(&fake{n: 2})
			s, err := r.Submit(context.Background(), engine.Request{ID: "z"})
			if err != nil {
				t.Fatal(err)
			}
			if toks, err := drain(t, s); err != nil || len(toks) != 2 {
				t.Fatalf("on the new engine: %v %v", toks, err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fake{n: c.n, refuse: "bad"}
			r, stop := start(t, f)
			defer stop()
			c.run(t, r, f)
		})
	}
}

func TestRunnerStopFailsWaiters(t *testing.T) {
	r, stop := start(t, &fake{n: 1 << 30})
	s, err := r.Submit(context.Background(), engine.Request{ID: "long"})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := drain(t, s); !errors.Is(err, ErrClosed) {
		t.Fatalf("stream after stop: %v", err)
	}
	if _, err := r.Submit(context.Background(), engine.Request{ID: "late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after stop: %v", err)
	}
}
