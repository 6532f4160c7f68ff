package pipeline

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/strata-ai/strata/internal/model/qwen3"
)

// TestPlanRoundTrip checks that a step's plan reaches the other stages as it left, TopK and
// the logits flags included, and that flags out of range are refused.
func TestPlanRoundTrip(t *testing.T) {
	items := []qwen3.BatchItem{
		{Tokens: []int{1, 2, 3}, Start: 0, Table: []int32{4}, WantLogits: true, TopK: 1},
		{Tokens: []int{5}, Start: 17, Table: []int32{0, 9}, WantLogits: true, TopK: 256},
		{Tokens: []int{6, 7}, Start: 3, Table: []int32{2}, AllLogits: true},
		{Tokens: []int{8}, Start: 1, Table: []int32{3}},
	}
	got, err := decodePlan(encodePlan(items))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, items) {
		t.Fatalf("plan came back as %+v, want %+v", got, items)
	}
	for _, flags := range []int64{-1, (maxTopK + 1) << 2} {
		b := encodePlan(items[:1])
		binary.LittleEndian.PutUint64(b[16:], uint64(flags)) // count, start, then the flags
		if _, err := decodePlan(b); err == nil {
			t.Errorf("flags %#x: a bad plan was accepted", flags)
		}
	}
}
