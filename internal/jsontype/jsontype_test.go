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
		{int32(0), "an integer"},
		{uint64(0), "an integer"},
		{float32(0), "a number"},
		{"", "a string"},
		{true, "true or false"},
		{[]int{}, "an array of integers"},
		{[][]string{}, "an array of arrays of strings"},
		{[]bool{}, "an array of true or false values"},
		{[]map[string]int{}, "an array of objects"},
		{[]byte{}, "a base64 string"},
		{map[string]int{}, "an object"},
		{struct{}{}, "an object"},
		{new(*int), "an integer"},
		{[]any{}, "an array of any JSON values"},
	} {
		if got := Want(reflect.TypeOf(c.v)); got != c.want {
			t.Errorf("Want(%T) = %q, want %q", c.v, got, c.want)
		}
	}
}

type sampling struct {
	Temperature *float64 `json:"temperature"`
	Stop        []string `json:"stop"`
}

type request struct {
	Size   int   `json:"size"`
	Layers []int `json:"mlp_only_layers"`
	Model  struct {
		Vocab map[string]int `json:"vocab"`
	} `json:"model"`
	Messages []struct {
		Role string `json:"role"`
	} `json:"messages"`
	Skipped string `json:"-"`
	sampling
}

func TestFieldError(t *testing.T) {
	for _, c := range []struct {
		doc, want, key string
	}{
		{`{"size": "64"}`, "size: got a JSON string, want an integer", "size"},
		{`{"mlp_only_layers": 3}`, "mlp_only_layers: got a JSON number, want an array of integers", "mlp_only_layers"},
		{`{"mlp_only_layers": [1, "2"]}`, "mlp_only_layers: an element is a JSON string, want an integer", "mlp_only_layers"},
		{`{"model": {"vocab": [1]}}`, "model.vocab: got a JSON array, want an object", "model.vocab"},
		{`{"model": {"vocab": {"a": "0"}}}`, "model.vocab: a value is a JSON string, want an integer", "model.vocab"},
		{`{"model": "x"}`, "model: got a JSON string, want an object", "model"},
		{`{"messages": [{"role": 5}]}`, "messages.role: got a JSON number, want a string", "messages.role"},
		// a key promoted from an embedded struct is named as the document spells it
		{`{"temperature": "hot"}`, "temperature: got a JSON string, want a number", "temperature"},
		{`{"stop": [1]}`, "stop: an element is a JSON number, want a string", "stop"},
	} {
		var v request
		err := FieldError(json.Unmarshal([]byte(c.doc), &v), &v)
		var e *Error
		if !errors.As(err, &e) || err.Error() != c.want || e.Key != c.key {
			t.Errorf("%s: got %v (key %q), want %q (key %q)", c.doc, err, keyOf(e), c.want, c.key)
			continue
		}
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Errorf("%s: the json error is not kept", c.doc)
		}
	}
	// the whole document of the wrong type, bad syntax, and no error: not a key's error
	var v request
	for _, err := range []error{json.Unmarshal([]byte(`[1]`), &v), json.Unmarshal([]byte(`{`), &v), errors.New("other"), nil} {
		if got := FieldError(err, &v); got != nil {
			t.Errorf("FieldError(%v) = %v, want nil", err, got)
		}
	}
	// a target that does not describe the path still gives the key and the wanted type
	err := FieldError(json.Unmarshal([]byte(`{"size": "x"}`), &v), 5)
	if err == nil || err.Error() != "size: got a JSON string, want an integer" {
		t.Errorf("with an unrelated target: %v", err)
	}
}

func keyOf(e *Error) string {
	if e == nil {
		return ""
	}
	return e.Key
}
