package sdk_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

func TestWithDefaults(t *testing.T) {
	fields := []sdk.Field{
		{Name: "counter", Type: sdk.TypeString, Default: "u8"},
		{Name: "limit", Type: sdk.TypeNumber, Default: 3.0},
		{Name: "on", Type: sdk.TypeBool},
		{Name: "tags", Type: sdk.TypeStringList, Default: []string{"a"}},
		{Name: "token", Type: sdk.TypeString, Required: true},
	}
	tests := []struct {
		name       string
		values     map[string]any
		want       map[string]any
		wantFields []string // fields named by the returned errors
	}{
		{
			name:   "defaults fill the gaps",
			values: map[string]any{"token": "t"},
			want:   map[string]any{"counter": "u8", "limit": 3.0, "on": nil, "tags": []string{"a"}, "token": "t"},
		},
		{
			name:   "given values win over defaults",
			values: map[string]any{"counter": "u32", "limit": 9.0, "on": true, "tags": []string{"x", "y"}, "token": "t"},
			want:   map[string]any{"counter": "u32", "limit": 9.0, "on": true, "tags": []string{"x", "y"}, "token": "t"},
		},
		{
			name:   "nil counts as missing",
			values: map[string]any{"counter": nil, "token": "t"},
			want:   map[string]any{"counter": "u8", "limit": 3.0, "on": nil, "tags": []string{"a"}, "token": "t"},
		},
		{
			name:   "unknown values are kept",
			values: map[string]any{"token": "t", "extra": "e"},
			want:   map[string]any{"counter": "u8", "limit": 3.0, "on": nil, "tags": []string{"a"}, "token": "t", "extra": "e"},
		},
		{
			name:       "required missing",
			values:     map[string]any{},
			want:       map[string]any{"counter": "u8", "limit": 3.0, "on": nil, "tags": []string{"a"}},
			wantFields: []string{"token"},
		},
		{
			name:       "required nil",
			values:     map[string]any{"token": nil},
			want:       map[string]any{"counter": "u8", "limit": 3.0, "on": nil, "tags": []string{"a"}, "token": nil},
			wantFields: []string{"token"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sdk.WithDefaults(fields, tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("values = %#v, want %#v", got, tt.want)
			}
			var gotFields []string
			for _, fe := range sdk.FieldErrors(err) {
				gotFields = append(gotFields, fe.Field)
			}
			if !reflect.DeepEqual(gotFields, tt.wantFields) {
				t.Errorf("error fields = %q, want %q (err %v)", gotFields, tt.wantFields, err)
			}
			if tt.wantFields != nil {
				var fe *sdk.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("err %v is not a *sdk.FieldError", err)
				}
				if want := `the "token" setting is required`; fe.Message != want {
					t.Errorf("message = %q, want %q", fe.Message, want)
				}
			}
		})
	}
}

func TestWithDefaultsDoesNotModifyInput(t *testing.T) {
	in := map[string]any{"token": "t"}
	_, _ = sdk.WithDefaults([]sdk.Field{{Name: "counter", Default: "u8"}}, in)
	if len(in) != 1 {
		t.Errorf("input map was modified: %v", in)
	}
}

func TestFieldErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []sdk.FieldError
	}{
		{name: "nil", err: nil, want: nil},
		{name: "one field error", err: sdk.FieldErrorf("counter", "bad %q", "u99"),
			want: []sdk.FieldError{{Field: "counter", Message: `bad "u99"`}}},
		{name: "plain error has no field", err: errors.New("boom"),
			want: []sdk.FieldError{{Message: "boom"}}},
		{name: "wrapped field error", err: fmt.Errorf("configure: %w", sdk.FieldErrorf("timezone", "unknown")),
			want: []sdk.FieldError{{Field: "timezone", Message: "unknown"}}},
		{
			name: "joined field and plain errors keep their order",
			err:  errors.Join(sdk.FieldErrorf("counter", "c"), errors.New("plain"), sdk.FieldErrorf("overflow", "o")),
			want: []sdk.FieldError{{Field: "counter", Message: "c"}, {Message: "plain"}, {Field: "overflow", Message: "o"}},
		},
		{
			name: "nested joins are flattened",
			err:  errors.Join(errors.Join(sdk.FieldErrorf("a", "1"), sdk.FieldErrorf("b", "2")), sdk.FieldErrorf("c", "3")),
			want: []sdk.FieldError{{Field: "a", Message: "1"}, {Field: "b", Message: "2"}, {Field: "c", Message: "3"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdk.FieldErrors(tt.err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FieldErrors(%v) = %#v, want %#v", tt.err, got, tt.want)
			}
		})
	}
}

func TestFieldErrorError(t *testing.T) {
	if got, want := sdk.FieldErrorf("counter", "is %d", 7).Error(), "counter: is 7"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestConfigAccessors(t *testing.T) {
	c := sdk.NewConfig(map[string]any{
		"s": "str", "n": 2.5, "b": true, "l": []string{"x"}, "la": []any{"y", 1, "z"},
	})
	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "string", got: c.String("s"), want: "str"},
		{name: "string of number is empty", got: c.String("n"), want: ""},
		{name: "number", got: c.Number("n"), want: 2.5},
		{name: "number missing", got: c.Number("missing"), want: 0.0},
		{name: "bool", got: c.Bool("b"), want: true},
		{name: "bool of string", got: c.Bool("s"), want: false},
		{name: "string list", got: c.StringList("l"), want: []string{"x"}},
		{name: "any list keeps strings", got: c.StringList("la"), want: []string{"y", "z"}},
		{name: "list of string is nil", got: c.StringList("s"), want: []string(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}
