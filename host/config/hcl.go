package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// evalContext offers env("NAME") (or env("NAME", "default") for an unset or
// empty variable) and file("path") so secrets stay out of the config file.
// file() paths are relative to the config's directory and lose
// one trailing newline, as secret files usually end with one.
func evalContext(dir string) *hcl.EvalContext {
	return &hcl.EvalContext{Functions: map[string]function.Function{
		"env": function.New(&function.Spec{
			Params:   []function.Parameter{{Name: "name", Type: cty.String}},
			VarParam: &function.Parameter{Name: "default", Type: cty.String},
			Type:     function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				if len(args) > 2 {
					return cty.NilVal, fmt.Errorf("env takes a name and at most one default")
				}
				v := os.Getenv(args[0].AsString())
				if v == "" && len(args) == 2 {
					v = args[1].AsString()
				}
				return cty.StringVal(v), nil
			},
		}),
		"file": function.New(&function.Spec{
			Params: []function.Parameter{{Name: "path", Type: cty.String}},
			Type:   function.StaticReturnType(cty.String),
			Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
				b, err := os.ReadFile(resolve(dir, args[0].AsString()))
				if err != nil {
					return cty.NilVal, fmt.Errorf("read %s: %w", filepath.Base(args[0].AsString()), err)
				}
				return cty.StringVal(strings.TrimSuffix(string(b), "\n")), nil
			},
		}),
	}}
}

// attrRange is where attribute name stands in body, falling back to the
// body's opening when it is absent or the body is not native syntax.
func attrRange(body hcl.Body, name string) *hcl.Range {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	if a, ok := sb.Attributes[name]; ok {
		r := a.SrcRange
		return &r
	}
	r := sb.SrcRange
	return &r
}
