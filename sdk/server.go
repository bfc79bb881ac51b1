package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// server is the plugin-side gRPC adapter around a Plugin.
type server struct {
	pluginv1.UnimplementedPluginServer
	impl Plugin
}

var _ pluginv1.PluginServer = (*server)(nil)

func newServer(p Plugin) *server { return &server{impl: p} }

func (s *server) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	return DescriptionToProto(s.impl.Describe())
}

func (s *server) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	values := map[string]any{}
	if req.GetConfigJson() != "" {
		if err := json.Unmarshal([]byte(req.GetConfigJson()), &values); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	fields := s.impl.Describe().Config
	values, err := WithDefaults(fields, values)
	if err == nil {
		err = s.impl.Configure(NewConfig(normalise(fields, values)))
	}
	resp := &pluginv1.ConfigureResponse{}
	for _, fe := range FieldErrors(err) {
		resp.Errors = append(resp.Errors, &pluginv1.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return resp, nil
}

func (s *server) Process(_ context.Context, req *pluginv1.ProcessRequest) (*pluginv1.ProcessResponse, error) {
	orders, err := ProcessRequestFromProto(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// Answer in the request's encoding: an older host reads only messages,
	// or only each order's effects packed.
	packed := len(req.GetOrders()) == 0
	if packed && req.GetPackedAnswer() {
		return &pluginv1.ProcessResponse{PackedResults: packResults(s.impl, orders)}, nil
	}
	return ResultsToProto(ProcessBatch(s.impl, orders), packed), nil
}

// normalise turns JSON-decoded lists into []string so Config's accessors
// see the same types whether values came over the wire or from sdktest.
func normalise(fields []Field, values map[string]any) map[string]any {
	for _, f := range fields {
		if f.Type != TypeStringList {
			continue
		}
		if _, ok := values[f.Name].([]any); ok {
			values[f.Name] = NewConfig(values).StringList(f.Name)
		}
	}
	return values
}
