// Package jsontype says in JSON's words what a Go value decodes from, so that a file or
// request with a key of the wrong type gets "hidden_size: got a JSON string, want an
// integer" rather than encoding/json's Go type names.
package jsontype

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Want names the JSON a value of type t decodes from: "an integer", "an array of strings",
// "an object", ...
func Want(t reflect.Type) string {
	t = deref(t)
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array of " + plural(Want(t.Elem()))
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Interface:
		return "any JSON value"
	}
	return t.String()
}

// plural turns "an integer" into "integers", "an array of strings" into "arrays of strings".
func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "a "), "an ")
	if rest, ok := strings.CutPrefix(s, "array of "); ok {
		return "arrays of " + rest
	}
	if s == "true or false" {
		return "true or false values"
	}
	return s + "s"
}

// Error is a JSON document's key holding the wrong type of value.
type Error struct {
	Key string // the key's path from the top, as the document spells it: "rope_parameters.rope_theta"
	msg string
	err *json.UnmarshalTypeError
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// FieldError rewrites a json.Unmarshal error about one key's type as "KEY: got a JSON
// string, want an integer", or "KEY: an element is a JSON string, want an integer" when
// the key is right and one of its elements is not. target is what was being decoded into,
// which says which of the two it is. It returns nil for any other error, and for one about
// the whole document.
func FieldError(err error, target any) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return nil
	}
	key, declared := walk(reflect.TypeOf(target), strings.Split(te.Field, "."))
	if key == "" {
		key = te.Field
	}
	e := &Error{Key: key, err: te}
	d := deref(declared)
	switch {
	case declared != nil && te.Type != declared && (d.Kind() == reflect.Slice || d.Kind() == reflect.Array):
		e.msg = fmt.Sprintf("%s: an element is a JSON %s, want %s", key, te.Value, Want(te.Type))
	case declared != nil && te.Type != declared && d.Kind() == reflect.Map:
		e.msg = fmt.Sprintf("%s: a value is a JSON %s, want %s", key, te.Value, Want(te.Type))
	default:
		e.msg = fmt.Sprintf("%s: got a JSON %s, want %s", key, te.Value, Want(te.Type))
	}
	return e
}

// walk follows path (encoding/json's Field: JSON names, and the Go names of embedded
// structs it went through) from t, and returns the path as the document spells it and the
// declared type at its end (nil where the path leads nowhere known).
func walk(t reflect.Type, path []string) (string, reflect.Type) {
	var keys []string
	for _, seg := range path {
		t = deref(t)
		for t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = deref(t.Elem())
		}
		if t == nil || t.Kind() != reflect.Struct {
			return "", nil
		}
		f, embedded, ok := field(t, seg)
		if !ok {
			return "", nil
		}
		if !embedded {
			keys = append(keys, seg)
		}
		t = f.Type
	}
	return strings.Join(keys, "."), t
}

// field finds the struct field a path segment names: by its JSON name, promoted from an
// embedded struct or not, or an embedded struct itself by its Go name (embedded reports
// that, a step the document does not spell).
func field(t reflect.Type, seg string) (f reflect.StructField, embedded, ok bool) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && name == "" {
			if sf.Name == seg {
				return sf, true, true
			}
			if et := deref(sf.Type); et.Kind() == reflect.Struct {
				if pf, _, ok := field(et, seg); ok {
					return pf, false, true
				}
			}
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if name == seg {
			return sf, false, true
		}
	}
	return reflect.StructField{}, false, false
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
