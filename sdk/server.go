package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// server is the plugin-side gRPC adapter around a Plugin.
type server struct {
	pluginv1.UnimplementedPluginServer
	impl Plugin
	// batches holds each Process call's decoded orders and Effects (of
	// *batchState), for the next call to reuse: a batch then allocates
	// little but its answer. A pool, not a field: gRPC may run calls
	// concurrently, even though the host does not.
	batches sync.Pool
	// answerBytes is the last packed answer's size per order, to size the
	// next answer's buffer once rather than grow it from a guess.
	answerBytes atomic.Int64
}

// batchState is what one Process call needs besides its answer.
type batchState struct {
	orders []Order
	out    Effects
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
		err = configure(s.impl, declaredConfig(normalise(fields, values)))
	}
	resp := &pluginv1.ConfigureResponse{}
	for _, fe := range FieldErrors(err) {
		resp.Errors = append(resp.Errors, &pluginv1.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return resp, nil
}

func (s *server) Process(_ context.Context, req *pluginv1.ProcessRequest) (*pluginv1.ProcessResponse, error) {
	// Answer in the request's encoding: an older host reads only messages,
	// or only each order's effects packed.
	packed := len(req.GetOrders()) == 0
	if packed && req.GetPackedAnswer() {
		return s.processPacked(req.GetPackedOrders())
	}
	orders, err := ProcessRequestFromProto(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return ResultsToProto(ProcessBatch(s.impl, orders), packed), nil
}

// ProcessStream answers each request on the stream as Process would, one
// at a time, each answer carrying its request's seq. Process' error ends
// the stream with its status, as it ends a call.
func (s *server) ProcessStream(st pluginv1.Plugin_ProcessStreamServer) error {
	for {
		req, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.Process(st.Context(), req)
		if err != nil {
			return err
		}
		resp.Seq = req.GetSeq()
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

// processPacked answers a batch of packed orders with packed results, in
// storage reused from call to call but for the answer itself, which gRPC
// sends after Process returned.
func (s *server) processPacked(data []byte) (*pluginv1.ProcessResponse, error) {
	st, _ := s.batches.Get().(*batchState)
	if st == nil {
		st = &batchState{}
	}
	defer func() {
		clear(st.orders) // drop the request's strings for the GC
		st.orders = st.orders[:0]
		st.out.release()
		s.batches.Put(st)
	}()
	orders, err := appendOrders(st.orders[:0], data)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	st.orders = orders
	n := len(orders)
	perOrder := s.answerBytes.Load()
	if perOrder == 0 {
		perOrder = 64
	}
	// An eighth more than the last batch's: one allocation, and rarely a
	// second.
	answer := appendResults(make([]byte, 0, int(perOrder+perOrder/8)*n), s.impl, orders, &st.out)
	if n > 0 {
		s.answerBytes.Store(int64(len(answer)/n + 1))
	}
	return &pluginv1.ProcessResponse{PackedResults: answer}, nil
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

// configure calls p.Configure, turning a read of an undeclared field (a
// typo in the plugin) into an error the host reports, where it would
// otherwise crash the plugin process.
func configure(p Plugin, c Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			u, ok := r.(UndeclaredField)
			if !ok {
				panic(r)
			}
			err = u
		}
	}()
	return p.Configure(c)
}
