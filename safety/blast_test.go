package safety_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/safety"
)

func TestCheckBlastRadius(t *testing.T) {
	ep := func(target string, keys ...string) safety.TargetSet {
		s := safety.TargetSet{Target: target}
		for _, k := range keys {
			s.Things = append(s.Things, safety.Thing{Key: k, Kind: "endpoint", Name: k})
		}
		return s
	}
	two := []safety.TargetSet{ep("a", "endpoint:127.0.0.1:1"), ep("b", "endpoint:127.0.0.1:2")}
	require.NoError(t, safety.CheckBlastRadius(two, safety.BlastLimits{MaxTargets: 2}), "two things within a cap of two")
	require.ErrorIs(t, safety.CheckBlastRadius(two, safety.BlastLimits{MaxTargets: 1}), safety.ErrTooManyTargets, "two things over a cap of one")
	same := []safety.TargetSet{ep("a", "endpoint:127.0.0.1:1"), ep("b", "endpoint:127.0.0.1:1")}
	require.NoError(t, safety.CheckBlastRadius(same, safety.BlastLimits{MaxTargets: 1}), "one thing named by two targets counts once")

	pods := ep("pods", "pod:1", "pod:2")
	pods.Total = 4
	require.NoError(t, safety.CheckBlastRadius([]safety.TargetSet{pods}, safety.BlastLimits{MaxPercent: 50}), "2 of 4 is 50%")
	require.ErrorIs(t, safety.CheckBlastRadius([]safety.TargetSet{pods}, safety.BlastLimits{MaxPercent: 49}), safety.ErrTooLargeShare, "2 of 4 is over 49%")
	require.NoError(t, safety.CheckBlastRadius(two, safety.BlastLimits{MaxPercent: 1}), "maxPercent applies only where the plugin reports a total")
}
