// Package client is the host side of the plugin protocol: it turns the gRPC
// stub that go-plugin hands out into calls on sdk types.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/internal/bufpool"
	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// SizeBuffers makes gRPC, in this whole process, marshal and unmarshal
// every message in buffers from size classes fit for batches
// (sdk/internal/bufpool) rather than from its own, which give a batch's
// request or answer a 1 MiB buffer. Call it once at start, before any
// plugin is launched: a connection takes the pool in force when it is made.
func SizeBuffers() { experimental.SetDefaultBufferPool(bufpool.New()) }

// Client calls one plugin. It is safe for concurrent use once Describe
// returned.
type Client struct {
	rpc pluginv1.PluginClient
	// packed: the plugin said (in Describe) that it reads the compact
	// encoding; an older plugin gets its orders as messages.
	packed bool
	// stream: the plugin said (in Describe) that it serves ProcessStream.
	stream bool
	// open is the stream batches go on, opened by the first; nil after a
	// failed call. Held by one call at a time: a call that finds it held
	// uses Process instead.
	open struct {
		sync.Mutex
		st     pluginv1.Plugin_ProcessStreamClient
		cancel context.CancelFunc
		// seq numbers the requests sent on streams: an answer must carry
		// its request's.
		seq uint64
	}
}

// New wraps the stub returned by go-plugin's Dispense.
func New(rpc pluginv1.PluginClient) *Client { return &Client{rpc: rpc} }

// FromDispensed wraps the value go-plugin's Dispense returned for
// sdk.PluginKey, failing when it is not an eventhost plugin.
func FromDispensed(raw any) (*Client, error) {
	rpc, ok := raw.(pluginv1.PluginClient)
	if !ok {
		return nil, fmt.Errorf("dispensed plugin is a %T, not an eventhost plugin client", raw)
	}
	return New(rpc), nil
}

// Describe asks the plugin to describe itself.
func (c *Client) Describe(ctx context.Context) (sdk.Description, error) {
	resp, err := c.rpc.Describe(ctx, &pluginv1.DescribeRequest{})
	if err != nil {
		return sdk.Description{}, fmt.Errorf("describe: %w", err)
	}
	c.packed = resp.GetPacked()
	c.stream = resp.GetStream()
	return sdk.DescriptionFromProto(resp)
}

// Configure sends the decoded values of the plugin's config block. The
// returned field errors are the plugin's verdict on them; err is a failure to
// ask at all.
func (c *Client) Configure(ctx context.Context, values map[string]any) ([]sdk.FieldError, error) {
	b, err := json.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	resp, err := c.rpc.Configure(ctx, &pluginv1.ConfigureRequest{ConfigJson: string(b)})
	if err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	var out []sdk.FieldError
	for _, fe := range resp.GetErrors() {
		out = append(out, sdk.FieldError{Field: fe.GetField(), Message: fe.GetMessage()})
	}
	return out, nil
}

// TooBigError is Process' error when the request or the plugin's answer
// was over sdk.MaxMessageBytes. That is the orders' fault, not the
// plugin's: its process is fine.
type TooBigError struct {
	// Request is true when the request was too big (Bytes long), false
	// when the answer was.
	Request bool
	Bytes   int
	Err     error
}

func (e *TooBigError) Error() string {
	if e.Request {
		return fmt.Sprintf("the request of %d bytes is over the %d-byte message limit: %v", e.Bytes, sdk.MaxMessageBytes, e.Err)
	}
	return fmt.Sprintf("the plugin's answer is over the %d-byte message limit: %v", sdk.MaxMessageBytes, e.Err)
}

func (e *TooBigError) Unwrap() error { return e.Err }

// Process sends one batch and returns one result per order, in order.
// Whatever the plugin answers costs at most this batch's results (see
// sdk.ResultsFromProto); err means the call itself failed.
func (c *Client) Process(ctx context.Context, orders []sdk.Order) ([]sdk.Result, error) {
	return c.ProcessBatch(ctx, NewBatch(orders, nil), nil)
}

// ProcessBatch is Process for a batch that other plugins may get too,
// packed once for all of them, with the answer decoded into store (a new
// one when nil). The results are only valid until store's next Reset.
func (c *Client) ProcessBatch(ctx context.Context, b Batch, store *sdk.AnswerStore) ([]sdk.Result, error) {
	var req *pluginv1.ProcessRequest
	if c.packed {
		req = &pluginv1.ProcessRequest{PackedOrders: b.packedOrders(), PackedAnswer: true}
	} else {
		req = sdk.ProcessRequestToProto(b.Orders(), false)
	}
	var resp *pluginv1.ProcessResponse
	var err error
	if c.stream && c.open.TryLock() {
		resp, err = c.onStream(ctx, req)
		c.open.Unlock()
	} else {
		resp, err = c.rpc.Process(ctx, req)
	}
	if status.Code(err) == codes.ResourceExhausted {
		// gRPC says which side's limit, not whose message: the size of
		// ours does.
		n := proto.Size(req)
		return nil, fmt.Errorf("process batch of %d orders: %w", b.Len(), &TooBigError{Request: n > sdk.MaxMessageBytes, Bytes: n, Err: err})
	}
	if err != nil {
		return nil, fmt.Errorf("process batch of %d orders: %w", b.Len(), err)
	}
	if store == nil {
		store = new(sdk.AnswerStore)
	}
	return store.ResultsFromProto(resp, b.Len()), nil
}

// onStream sends req on the open stream, opening one first if there is
// none, and waits for its answer. ctx bounds this call alone: when it ends
// first the stream is cancelled, and the error is ctx's, as Process would
// return it. After any error the stream is dropped: the next call opens
// another. c.open must be held.
func (c *Client) onStream(ctx context.Context, req *pluginv1.ProcessRequest) (*pluginv1.ProcessResponse, error) {
	var sctx context.Context
	if c.open.st == nil {
		// The stream outlives this call's ctx: it is cancelled by hand.
		sctx, c.open.cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	cancel := c.open.cancel
	// Before the stream is opened: opening waits for the connection (up
	// to gRPC's 20 s connect timeout), and ctx bounds that too.
	stop := context.AfterFunc(ctx, cancel)
	var err error
	if c.open.st == nil {
		c.open.st, err = c.rpc.ProcessStream(sctx)
	}
	var resp *pluginv1.ProcessResponse
	if err == nil {
		st := c.open.st
		c.open.seq++
		req.Seq = c.open.seq
		err = st.Send(req)
		if err == nil || err == io.EOF {
			// Send says io.EOF when the stream has ended; Recv says why.
			resp, err = st.Recv()
		}
		if err == nil && resp.GetSeq() != req.GetSeq() {
			// A second answer to an earlier request, or one sent unasked:
			// taken for this one, it would be another batch's effects.
			err = status.Errorf(codes.Internal, "the plugin answered request %d on its stream with the answer to request %d",
				req.GetSeq(), resp.GetSeq())
			resp = nil
		}
	}
	if !stop() || err != nil {
		cancel()
		c.open.st, c.open.cancel = nil, nil
	}
	if err != nil && ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err == io.EOF {
		// The plugin ended the stream without a status: it broke the
		// protocol, as a call without an answer would.
		err = status.Error(codes.Internal, "the plugin closed its stream without answering")
	}
	return resp, err
}

// Close ends the open stream, if any. The Client stays usable.
func (c *Client) Close() {
	c.open.Lock()
	defer c.open.Unlock()
	if c.open.cancel != nil {
		c.open.cancel()
		c.open.st, c.open.cancel = nil, nil
	}
}
