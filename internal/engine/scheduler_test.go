package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/strata-ai/strata/internal/kvcache"
)

func seq(id string, prompt, maxTokens int) *Sequence {
	t := make([]int, prompt)
	for i := range t {
		t[i] = 1000 + i
	}
	return &Sequence{ID: id, Tokens: t, MaxTokens: maxTokens}
}

func items(st Step) string {
	s := ""
	for _, it := range st.Items {
		s += fmt.Sprintf("%s[%d,%d) ", it.Seq.ID, it.Start, it.End)
	}
	return s
}

// run drives a scheduler step by step, sampling token 7 for every sampling item, and returns
// each step's items as text.
func run(t *testing.T, s *Scheduler, steps int) []string {
	t.Helper()
	var out []string
	for range steps {
		st := s.Schedule()
		out = append(out, items(st))
		sampled := map[*Sequence]int{}
		for _, it := range st.Items {
			if it.Samples() {
				sampled[it.Seq] = 7
			}
		}
		s.Complete(st, sampled, nil)
	}
	return out
}

func TestSchedulerTable(t *testing.T) {
	cases := []struct {
		name   string
		cfg    SchedulerConfig
		blocks int
		seqs   []*Sequence
		steps  []string
	}{
		{"continuous batching: decode joins prefill",
			SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 64}, 16,
			[]*Sequence{seq("a", 5, 2), seq("b", 3, 1)},
			[]string{"a[0,5) b[0,3) ", "a[5,6) ", ""}},
		{"token budget holds the second prompt back",
			SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 8, MaxModelLen: 8}, 16,
			[]*Sequence{seq("a", 6, 2), seq("b", 6, 1)},
			[]string{"a[0,6) ", "a[6,7) b[0,6) ", ""}},
		{"chunked prefill splits a long prompt",
			SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 4, ChunkedPrefill: true, MaxModelLen: 64}, 16,
			[]*Sequence{seq("a", 10, 1)},
			[]string{"a[0,4) ", "a[4,8) ", "a[8,10) ", ""}},
		{"max-num-seqs caps the batch",
			SchedulerConfig{MaxNumSeqs: 1, MaxNumBatchedTokens: 64, MaxModelLen: 64}, 16,
			[]*Sequence{seq("a", 2, 2), seq("b", 2, 1)},
			[]string{"a[0,2) ", "a[2,3) ", "b[0,2) ", ""}},
		{"running out of blocks preempts the newest sequence",
			SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 64}, 2,
			[]*Sequence{seq("a", 4, 3), seq("b", 4, 3)},
			// blocks of 4: each prompt fills one block; a's first decode needs a second
			// block, so b (newest) is preempted, and recomputed (its prompt) once a is done
			[]string{"a[0,4) b[0,4) ", "a[4,5) ", "a[5,6) ", "b[0,5) ", "b[5,6) ", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bm := kvcache.NewManager(c.blocks, 4, false)
			s, err := NewScheduler(c.cfg, bm)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range c.seqs {
				if err := s.Add(q); err != nil {
					t.Fatal(err)
				}
			}
			got := run(t, s, len(c.steps))
			for i := range c.steps {
				if got[i] != c.steps[i] {
					t.Fatalf("step %d: got %q, want %q (all: %q)", i, got[i], c.steps[i], got)
				}
			}
			if bm.FreeBlocks() != c.blocks {
				t.Fatalf("%d of %d blocks free after every sequence finished", bm.FreeBlocks(), c.blocks)
			}
		})
	}
}

// TestPrefixCaching: a second request with the same 9-token prompt reuses its two full
// blocks and computes only the rest.
func TestPrefixCaching(t *testing.T) {
	bm := kvcache.NewManager(16, 4, true)
	s, _ := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 64}, bm)
	s.Add(seq("a", 9, 1))
	if got := run(t, s, 2); got[0] != "a[0,9) " {
		t.Fatalf("first request: %q", got)
	}
	s.Add(seq("b", 9, 1))
	got := run(t, s, 1)
	if got[0] != "b[8,9) " {
		t.Fatalf("second request should start at the cached 8 tokens: %q", got)
	}
	if bm.Hits != 1 || bm.Queries != 2 || bm.QueryTokens != 18 || bm.HitTokens != 8 {
		t.Fatalf("hits %d queries %d, tokens %d of %d", bm.Hits, bm.Queries, bm.HitTokens, bm.QueryTokens)
	}
}

// TestPrefixMetricsCountAdmissions: a request that waits for room is looked up again each
// step, but counted once, when it is admitted.
func TestPrefixMetricsCountAdmissions(t *testing.T) {
	bm := kvcache.NewManager(4, 4, true) // 16 token slots
	s, _ := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 16}, bm)
	s.Add(seq("a", 12, 4))
	s.Add(seq("b", 8, 1)) // waits until a's blocks are free
	run(t, s, 8)
	if bm.Queries != 2 || bm.QueryTokens != 20 {
		t.Fatalf("queries %d, query tokens %d; want 2 and 20", bm.Queries, bm.QueryTokens)
	}
}

func TestAddRefusals(t *testing.T) {
	bm := kvcache.NewManager(4, 4, false)
	s, _ := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 64}, bm)
	if err := s.Add(seq("a", 60, 10)); err == nil {
		t.Fatal("prompt over max-model-len accepted")
	}
	if err := s.Add(seq("b", 20, 1)); err == nil {
		t.Fatal("request bigger than the whole cache accepted")
	}
	s.Add(seq("c", 2, 1))
	if err := s.Add(seq("c", 2, 1)); err == nil {
		t.Fatal("duplicate id accepted")
	}
	s2, _ := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 8}, bm)
	if err := s2.Add(seq("d", 6, 4)); err == nil {
		t.Fatal("without chunked prefill, a request over the token budget would wait forever but was accepted")
	}
	if _, err := NewScheduler(SchedulerConfig{MaxNumSeqs: 1, MaxNumBatchedTokens: 8, MaxModelLen: 64}, bm); err == nil {
		t.Fatal("budget below max-model-len without chunked prefill accepted")
	}
}

// TestRandomizedNoLeaks drives thousands of random steps with random arrivals, aborts and
// finishes, checking after every step that the block pool agrees with the sequences' tables,
// that no step exceeds its budgets, and that everything is free at the end.
func TestRandomizedNoLeaks(t *testing.T) {
	for _, prefix := range []bool{false, true} {
		for _, chunked := range []bool{false, true} {
			r := rand.New(rand.NewPCG(1, uint64(len(fmt.Sprint(prefix, chunked)))))
			bm := kvcache.NewManager(24, 4, prefix)
			cfg := SchedulerConfig{MaxNumSeqs: 5, MaxNumBatchedTokens: 40, ChunkedPrefill: chunked, MaxModelLen: 40}
			s, err := NewScheduler(cfg, bm)
			if err != nil {
				t.Fatal(err)
			}
			live := map[string]bool{}
			next := 0
			for step := range 3000 {
				if r.IntN(3) == 0 {
					id := fmt.Sprint("r", next)
					next++
					q := seq(id, 1+r.IntN(20), 1+r.IntN(16))
					if r.IntN(2) == 0 { // shared prefixes exercise the cache
						for i := range q.Tokens {
							q.Tokens[i] = i % 7
						}
					}
					if s.Add(q) == nil {
						live[id] = true
					}
				}
				if r.IntN(10) == 0 && len(live) > 0 {
					for id := range live {
						s.Abort(id)
						delete(live, id)
						break
					}
				}
				st := s.Schedule()
				if st.Tokens() > cfg.MaxNumBatchedTokens || len(st.Items) > cfg.MaxNumSeqs {
					t.Fatalf("step %d over budget: %d tokens, %d items", step, st.Tokens(), len(st.Items))
				}
				seen := map[*Sequence]bool{}
				sampled := map[*Sequence]int{}
				finished := map[*Sequence]bool{}
				for _, it := range st.Items {
					if seen[it.Seq] || it.Start != it.Seq.Computed || it.End > len(it.Seq.Tokens) || it.Start >= it.End {
						t.Fatalf("step %d: bad item %+v", step, it)
					}
					seen[it.Seq] = true
					if len(it.Seq.Table)*4 < it.End {
						t.Fatalf("step %d: %s computes to %d with %d blocks", step, it.Seq.ID, it.End, len(it.Seq.Table))
					}
					if it.Samples() {
						sampled[it.Seq] = r.IntN(7)
						finished[it.Seq] = r.IntN(20) == 0
					}
				}
				for _, d := range s.Complete(st, sampled, finished) {
					delete(live, d.ID)
				}
				if msg := bm.Check(s.Tables()); msg != "" {
					t.Fatalf("prefix=%v chunked=%v step %d: %s", prefix, chunked, step, msg)
				}
			}
			for id := range live {
				s.Abort(id)
			}
			if bm.FreeBlocks() != bm.NumBlocks() || s.NumRunning()+s.NumWaiting() != 0 {
				t.Fatalf("prefix=%v chunked=%v: %d of %d blocks free, %d sequences left", prefix, chunked, bm.FreeBlocks(), bm.NumBlocks(), s.NumRunning()+s.NumWaiting())
			}
		}
	}
}

// TestPipelinedPreemptionWaits: with steps in flight (a pipelined engine), a sequence that
// needs a block while only newer, in-flight sequences could give one up waits for them, as
// vLLM would preempt the newest; it does not throw away its own KV. Once they are back, the
// newest is preempted.
func TestPipelinedPreemptionWaits(t *testing.T) {
	bm := kvcache.NewManager(4, 4, false)
	s, err := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 64, MaxModelLen: 16}, bm)
	if err != nil {
		t.Fatal(err)
	}
	a, b := seq("a", 8, 4), seq("b", 8, 4)
	s.Add(a)
	s.Add(b)
	st1 := s.ScheduleAtMost(1)
	s.SetBusy(st1, true)
	st2 := s.ScheduleAtMost(1)
	s.SetBusy(st2, true)
	if items(st1) != "a[0,8) " || items(st2) != "b[0,8) " {
		t.Fatalf("steps %q and %q, want a's and b's prompts", items(st1), items(st2))
	}
	s.SetBusy(st1, false)
	s.Complete(st1, map[*Sequence]int{a: 7}, nil)
	// a needs a third block; the pool's four are a's two and b's two, b in flight
	st3 := s.ScheduleAtMost(1)
	if len(st3.Items) != 0 || len(st3.Preempted) != 0 || a.Computed != 8 || a.Preemptions != 0 {
		t.Fatalf("a preempted itself while b was in flight: items %q, preempted %d, a computed %d", items(st3), len(st3.Preempted), a.Computed)
	}
	s.SetBusy(st2, false)
	s.Complete(st2, map[*Sequence]int{b: 7}, nil)
	st4 := s.ScheduleAtMost(1)
	if items(st4) != "a[8,9) " || len(st4.Preempted) != 1 || st4.Preempted[0] != b {
		t.Fatalf("with b back: items %q, preempted %v; want a's decode and b preempted", items(st4), st4.Preempted)
	}
	if msg := bm.Check(s.Tables()); msg != "" {
		t.Fatal(msg)
	}
}

// TestRandomizedPipelinedKVContents drives the scheduler as a pipelined engine does, with up
// to three steps in flight, through random arrivals, aborts, finishes and preemptions, with
// and without prefix caching and chunked prefill, over small pools. It simulates the cache's
// contents: every step writes each position's fingerprint (of the sequence's tokens up to
// it) into the slot its block table names, and every position a step reads must hold its own
// sequence's fingerprint. It also checks that a step only writes blocks no one else holds (no
// other table, not the prefix cache, no step in flight), the budgets, the block manager's own
// accounting after every step, and that every block is free at the end.
func TestRandomizedPipelinedKVContents(t *testing.T) {
	for _, depth := range []int{1, 2, 3} {
		for _, prefix := range []bool{false, true} {
			for _, chunked := range []bool{false, true} {
				for seed := range uint64(20) {
					pipelinedRun(t, depth, prefix, chunked, seed)
				}
			}
		}
	}
}

// fingerprints gives each position of tokens a hash of the tokens up to and including it.
func fingerprints(tokens []int) []uint64 {
	out := make([]uint64, len(tokens))
	h := uint64(1469598103934665603)
	for i, t := range tokens {
		h = (h ^ uint64(t+1)) * 1099511628211
		h ^= h >> 29
		out[i] = h
	}
	return out
}

// simFlight is a step in flight, with the tables and tokens its items had when it was scheduled
// (an aborted sequence's stage still writes where its table pointed).
type simFlight struct {
	st     Step
	tables [][]kvcache.BlockID
	toks   [][]int
}

func pipelinedRun(t *testing.T, depth int, prefix, chunked bool, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	bs := 1 + r.IntN(4)
	nb := 6 + r.IntN(20)
	bm := kvcache.NewManager(nb, bs, prefix)
	maxLen := min(nb*bs, 40)
	cfg := SchedulerConfig{MaxNumSeqs: 1 + r.IntN(6), MaxNumBatchedTokens: 40, ChunkedPrefill: chunked, MaxModelLen: maxLen}
	if chunked {
		cfg.MaxNumBatchedTokens = 1 + r.IntN(20)
	}
	s, err := NewScheduler(cfg, bm)
	if err != nil {
		t.Fatal(err)
	}
	kv := make([]uint64, nb*bs)
	live := map[string]*Sequence{}
	next := 0
	var inflight []simFlight
	tag := fmt.Sprintf("depth=%d prefix=%v chunked=%v seed=%d bs=%d nb=%d", depth, prefix, chunked, seed, bs, nb)
	complete := func(f simFlight) {
		sampled, finished := map[*Sequence]int{}, map[*Sequence]bool{}
		for i, it := range f.st.Items {
			seq := it.Seq
			if s.byID[seq.ID] != seq { // aborted in flight: its stage still writes, harmlessly
				fp := fingerprints(f.toks[i])
				for p := it.Start; p < it.End; p++ {
					kv[int(f.tables[i][p/bs])*bs+p%bs] = fp[p] ^ 0xdead
				}
				continue
			}
			fp := fingerprints(seq.Tokens)
			for p := range it.Start {
				if kv[int(seq.Table[p/bs])*bs+p%bs] != fp[p] {
					t.Fatalf("%s: %s reads position %d with the wrong KV (step from %d)", tag, seq.ID, p, it.Start)
				}
			}
			for p := it.Start; p < it.End; p++ {
				kv[int(seq.Table[p/bs])*bs+p%bs] = fp[p]
			}
			if it.Samples() {
				sampled[seq] = r.IntN(3)
				finished[seq] = r.IntN(15) == 0
			}
		}
		for _, d := range s.Complete(f.st, sampled, finished) {
			delete(live, d.ID)
		}
	}
	launch := func(st Step) {
		f := simFlight{st: st}
		for _, it := range st.Items {
			f.tables = append(f.tables, append([]kvcache.BlockID(nil), it.Seq.Table...))
			f.toks = append(f.toks, append([]int(nil), it.Seq.Tokens...))
		}
		s.SetBusy(st, true)
		inflight = append(inflight, f)
	}
	land := func() {
		f := inflight[0]
		inflight = inflight[1:]
		s.SetBusy(f.st, false)
		complete(f)
	}
	for step := range 1500 {
		if r.IntN(2) == 0 {
			id := fmt.Sprint("r", next)
			next++
			q := seq(id, 1+r.IntN(maxLen-1), 1)
			q.MaxTokens = 1 + r.IntN(maxLen-len(q.Tokens))
			for i := range q.Tokens { // few distinct tokens, so prefixes repeat
				if r.IntN(2) == 0 {
					q.Tokens[i] = i % 3
				} else {
					q.Tokens[i] = r.IntN(3)
				}
			}
			if s.Add(q) == nil {
				live[id] = q
			}
		}
		if r.IntN(12) == 0 {
			for id := range live {
				s.Abort(id)
				delete(live, id)
				break
			}
		}
		for len(inflight) < depth {
			st := s.Schedule()
			if len(st.Items) == 0 {
				break
			}
			if st.Tokens() > cfg.MaxNumBatchedTokens || len(st.Items) > cfg.MaxNumSeqs {
				t.Fatalf("%s: step of %d tokens and %d sequences is over budget", tag, st.Tokens(), len(st.Items))
			}
			for _, it := range st.Items {
				for p := it.Start; p < it.End; p++ {
					b := it.Seq.Table[p/bs]
					if bm.Shared(b) {
						t.Fatalf("%s: %s writes position %d into shared block %d", tag, it.Seq.ID, p, b)
					}
					for _, f := range inflight {
						for _, o := range f.st.Items {
							if s.byID[o.Seq.ID] == o.Seq && contains(o.Seq.Table, b) {
								t.Fatalf("%s: %s writes block %d of %s, which is in flight", tag, it.Seq.ID, b, o.Seq.ID)
							}
						}
					}
				}
			}
			launch(st)
		}
		if len(inflight) > 0 {
			land()
		}
		if msg := bm.Check(s.Tables()); msg != "" {
			t.Fatalf("%s step %d: %s", tag, step, msg)
		}
		if len(inflight) == 0 && s.NumRunning() == 0 && s.NumWaiting() > 0 {
			st := s.Schedule()
			if len(st.Items) == 0 {
				t.Fatalf("%s: stuck with %d waiting and nothing running", tag, s.NumWaiting())
			}
			launch(st)
		}
	}
	for len(inflight) > 0 {
		land()
	}
	for id := range live {
		s.Abort(id)
	}
	if bm.FreeBlocks() != bm.NumBlocks() {
		t.Fatalf("%s: %d of %d blocks free at the end", tag, bm.FreeBlocks(), bm.NumBlocks())
	}
}

func contains(table []kvcache.BlockID, b kvcache.BlockID) bool {
	for _, x := range table {
		if x == b {
			return true
		}
	}
	return false
}

// TestPromptLogitsChunks: a sequence that wants every prompt position's logits computes its
// prompt at most promptLogitsChunk tokens a step, even without chunked prefill, then decodes
// as usual.
func TestPromptLogitsChunks(t *testing.T) {
	bm := kvcache.NewManager(400, 4, true)
	s, err := NewScheduler(SchedulerConfig{MaxNumSeqs: 4, MaxNumBatchedTokens: 4096, MaxModelLen: 1200}, bm)
	if err != nil {
		t.Fatal(err)
	}
	a := seq("a", 1000, 4)
	a.PromptLogits = true
	if err := s.Add(a); err != nil {
		t.Fatal(err)
	}
	got := run(t, s, 3)
	want := []string{"a[0,512) ", "a[512,1000) ", "a[1000,1001) "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
}
