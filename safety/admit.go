package safety

import (
	"errors"
	"fmt"
)

// ErrKillSwitchUnknown means whether the kill switch is engaged could not
// be told: a run that cannot tell does not start.
var ErrKillSwitchUnknown = errors.New("cannot tell whether the kill switch is engaged")

// CheckKillSwitch decides whether a run may start on stateDir as far as
// the kill switch goes. It returns nil when the switch is off, a
// *KillSwitchError (errors.Is ErrKillSwitch) when it is engaged, and an
// error wrapping ErrKillSwitchUnknown when it cannot be read. The caller
// turns the answer into a verdict; it does not read the switch itself.
func CheckKillSwitch(stateDir string) error {
	reason, engaged, err := Engaged(stateDir)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrKillSwitchUnknown, err)
	case engaged:
		return &KillSwitchError{Reason: reason}
	}
	return nil
}

// TargetLocker takes the target locks of stateDir for a run, in the shape
// the engine asks for them: a release function, or ErrTargetLocked.
func TargetLocker(stateDir string) func(keys []string, runID string) (func() error, error) {
	return func(keys []string, runID string) (func() error, error) {
		l, err := LockTargets(stateDir, keys, runID)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	}
}
