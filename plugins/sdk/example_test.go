package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// flagSchema is the JSON Schema of the example fault's `with`.
const flagSchema = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["flag"],
  "properties": {
    "flag": {"type": "string", "minLength": 1, "description": "feature flag to turn off"},
    "for":  {"type": "string", "format": "duration", "x-minimum": "1s", "description": "how long the flag service keeps it off without renewal"}
  }
}`

// flagParams are the decoded parameters.
type flagParams struct {
	Flag string `json:"flag"`
}

// FlagOff is a fault that turns a feature flag off. It keeps the flags in
// memory to stay self-contained; a real plugin would call the flag
// service, and mark what it changes with req.ID so that RevertByID could
// find it from a fresh process.
type FlagOff struct {
	mu  sync.Mutex
	off map[string]string // handle → flag
}

func (f *FlagOff) Describe() sdk.Description {
	return sdk.Description{
		Name: "flag-off", Version: "0.1.0", Summary: "turns a feature flag off",
		ParamsSchema: json.RawMessage(flagSchema), TargetKinds: []string{sdk.KindHost},
	}
}

func (f *FlagOff) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	var p flagParams
	return sdk.DecodeParams(req.Params, json.RawMessage(flagSchema), &p)
}

func (f *FlagOff) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err // a cancelled context injects nothing
	}
	var p flagParams
	if probs := sdk.DecodeParams(req.Params, json.RawMessage(flagSchema), &p); len(probs) > 0 {
		return "", fmt.Errorf("%s: %s", probs[0].Param, probs[0].Message)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h := "flag:" + p.Flag
	f.off[h] = p.Flag
	return h, nil
}

func (f *FlagOff) Revert(_ context.Context, handle string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, was := f.off[handle] // an unknown handle is nothing live, not an error
	delete(f.off, handle)
	return was, nil
}

// A plugin is a Fault and a main that serves it. Build it as
// chaos-plugin-flag-off into the plugin directory and pin it with `chaos
// plugins lock`; its tests call sdktest.Run. Leases, revert by id, panics
// and the host dying are handled by Serve.
func Example() {
	f := &FlagOff{off: map[string]string{}}

	// What `chaos validate` asks before anything runs: each problem names
	// its parameter, and the file shows it at its line and column.
	probs := f.Validate(context.Background(), sdk.Request{Params: json.RawMessage(`{"flag":"","for":"10ms"}`)})
	for _, p := range probs {
		fmt.Println(p.Param)
	}

	// In the plugin's main this is all there is; it returns when the host
	// closes the plugin, after reverting whatever is still live.
	serve := func() error { return sdk.Serve(context.Background(), f) }
	_ = serve
	// Output:
	// with.flag
	// with.for
}
