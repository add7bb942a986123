package sdk_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
)

const testSchema = `{
  "type": "object", "additionalProperties": false, "required": ["delay"],
  "properties": {
    "delay": {"type": "string", "format": "duration", "x-exclusiveMinimum": "0s", "x-maximum": "1h"},
    "jitter": {"type": "string", "format": "duration", "x-minimum": "0s", "x-maximum": "1h"},
    "count": {"type": "integer", "minimum": 1, "maximum": 10},
    "mode": {"enum": ["proxy"]}
  }
}`

type testParams struct {
	Delay  time.Duration `json:"delay"`
	Jitter time.Duration `json:"jitter"`
	Count  int           `json:"count"`
	Mode   string        `json:"mode"`
}

// TestDecodeParams: the schema is the one source of truth; every problem
// names its parameter's path, one per parameter; durations decode.
func TestDecodeParams(t *testing.T) {
	var p testParams
	probs := sdk.DecodeParams(json.RawMessage(`{"delay":"200ms","jitter":"5ms","count":3,"mode":"proxy"}`), json.RawMessage(testSchema), &p)
	require.Empty(t, probs, "valid parameters have no problems")
	require.Equal(t, testParams{Delay: 200 * time.Millisecond, Jitter: 5 * time.Millisecond, Count: 3, Mode: "proxy"}, p, "a duration string decodes into a time.Duration")

	for raw, want := range map[string][]string{
		`{}`:                                    {"with.delay"},
		`{"delay":"soon"}`:                      {"with.delay"},
		`{"delay":200}`:                         {"with.delay"},
		`{"delay":"0s"}`:                        {"with.delay"},
		`{"delay":"2h"}`:                        {"with.delay"},
		`{"delay":"1s","jitter":"-1s"}`:         {"with.jitter"},
		`{"delay":"1s","count":0}`:              {"with.count"},
		`{"delay":"1s","count":"many"}`:         {"with.count"},
		`{"delay":"1s","count":1.5}`:            {"with.count"},
		`{"delay":"1s","mode":"netem"}`:         {"with.mode"},
		`{"delay":"1s","dealy":"1s"}`:           {"with.dealy"},
		`{"delay":"x","count":11,"extra":true}`: {"with.count", "with.delay", "with.extra"},
		`[1]`:                                   {"with"},
	} {
		probs := sdk.DecodeParams(json.RawMessage(raw), json.RawMessage(testSchema), &p)
		var got []string
		for _, pr := range probs {
			got = append(got, pr.Param)
			require.NotEmpty(t, pr.Message, "every problem says why")
		}
		require.Equal(t, want, got, "%s: one problem per parameter, at its path", raw)
	}
	probs = sdk.DecodeParams(json.RawMessage(`{"delay":"1s","count":11}`), json.RawMessage(testSchema), &p)
	require.Equal(t, "count 11 is out of range: from 1 to 10", probs[0].Message, "bounds are read from the schema")
}
