package jsontype

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestWant(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{int32(0), "a whole number"},
		{uint64(0), "a whole number"},
		{float32(0), "a number"},
		{"", "a string"},
		{true, "true or false"},
		{[]int{}, "a list of whole numbers"},
		{[][]string{}, "a list of lists of strings"},
		{[]bool{}, "a list of true or false values"},
		{[]map[string]int{}, "a list of objects"},
		{[]byte{}, "a base64 string"},
		{map[string]int{}, "an object"},
		{struct{}{}, "an object"},
		{new(*int), "a whole number"},
		{[]any{}, "a list of any JSON values"},
	} {
		if got := Want(reflect.TypeOf(c.v)); got != c.want {
			t.Errorf("Want(%T) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestFieldError(t *testing.T) {
	type inner struct {
		Vocab map[string]int `json:"vocab"`
	}
	var v struct {
		Size  int   `json:"size"`
		Model inner `json:"model"`
	}
	for _, c := range []struct {
		doc, want string
	}{
		{`{"size": "64"}`, "size: got a JSON string, want a whole number"},
		{`{"model": {"vocab": [1]}}`, "model.vocab: got a JSON array, want an object"},
		{`{"model": "x"}`, "model: got a JSON string, want an object"},
	} {
		err := FieldError(json.Unmarshal([]byte(c.doc), &v))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.doc, err, c.want)
		}
	}
	// the whole document of the wrong type, bad syntax, and no error: not a key's error
	for _, err := range []error{json.Unmarshal([]byte(`[1]`), &v), json.Unmarshal([]byte(`{`), &v), errors.New("other"), nil} {
		if got := FieldError(err); got != nil {
			t.Errorf("FieldError(%v) = %v, want nil", err, got)
		}
	}
}
