// Package jsontype says in JSON's words what a Go value decodes from, so that a file or
// request with a key of the wrong type gets "hidden_size: got a JSON string, want a whole
// number" rather than encoding/json's Go type names.
package jsontype

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Want names the JSON a value of type t decodes from: "a whole number", "a list of
// strings", "an object", ...
func Want(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return "a base64 string"
		}
		return "a list of " + plural(Want(t.Elem()))
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Interface:
		return "any JSON value"
	}
	return t.String()
}

// plural turns "a whole number" into "whole numbers", "an object" into "objects".
func plural(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "a "), "an ")
	if strings.HasPrefix(s, "list of ") {
		return "lists of " + strings.TrimPrefix(s, "list of ")
	}
	if s == "true or false" {
		return "true or false values"
	}
	return s + "s"
}

// FieldError rewrites a json.Unmarshal error about one key's type as "KEY: got a JSON
// string, want a whole number", the key given as its path from the top ("rope_parameters.
// rope_theta"). It returns nil for any other error, or one about the whole document.
func FieldError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return nil
	}
	field := strings.TrimPrefix(te.Field, ".")
	if field == "" {
		return nil
	}
	return fmt.Errorf("%s: got a JSON %s, want %s", field, te.Value, Want(te.Type))
}
