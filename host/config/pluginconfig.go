package config

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/eventhost/eventhost/sdk"
)

// DecodePluginConfig decodes a plugin's `config {}` block against the schema
// the plugin described. Unknown attributes, wrong types and missing required
// fields come back as diagnostics at their place in the file.
func DecodePluginConfig(p Plugin, fields []sdk.Field) (map[string]any, hcl.Diagnostics) {
	spec := hcldec.ObjectSpec{}
	for _, f := range fields {
		t, ok := ctyType(f.Type)
		if !ok {
			return nil, hcl.Diagnostics{errorAt(&p.Range, "Broken plugin schema",
				fmt.Sprintf("Plugin %q declares config field %q with an unknown type.", p.Name, f.Name))}
		}
		spec[f.Name] = &hcldec.AttrSpec{Name: f.Name, Type: t, Required: f.Required}
	}
	body := p.Body
	if body == nil {
		body = hcl.EmptyBody()
	}
	val, diags := hcldec.Decode(body, spec, evalContext(filepath.Dir(p.Range.Filename)))
	if diags.HasErrors() {
		return nil, diags
	}
	out := map[string]any{}
	for _, f := range fields {
		v := val.GetAttr(f.Name)
		if v.IsNull() {
			continue
		}
		out[f.Name] = goValue(v)
	}
	return out, nil
}

// FieldErrorDiagnostics places a plugin's verdict on its config at the
// attributes it names (or at the block when it names none).
func FieldErrorDiagnostics(p Plugin, errs []sdk.FieldError) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, fe := range errs {
		subject := &p.Range
		if fe.Field != "" && p.Body != nil {
			if r := attrRange(p.Body, fe.Field); r != nil {
				subject = r
			}
		}
		diags = append(diags, errorAt(subject, fmt.Sprintf("Plugin %q rejected its config", p.Name), fe.Message))
	}
	return diags
}

func ctyType(t sdk.FieldType) (cty.Type, bool) {
	switch t {
	case sdk.TypeString:
		return cty.String, true
	case sdk.TypeNumber:
		return cty.Number, true
	case sdk.TypeBool:
		return cty.Bool, true
	case sdk.TypeStringList:
		return cty.List(cty.String), true
	}
	return cty.NilType, false
}

func goValue(v cty.Value) any {
	switch {
	case v.Type() == cty.String:
		return v.AsString()
	case v.Type() == cty.Bool:
		return v.True()
	case v.Type() == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		return f
	case v.Type().IsListType():
		out := []string{}
		for _, e := range v.AsValueSlice() {
			out = append(out, e.AsString())
		}
		return out
	}
	return nil
}
