package engine

import (
	"context"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// StatusReporter is the optional ability of a FaultPlugin to say what
// became of a handle (sdk.Client has it). After a revert the engine asks it
// once and records the detail in the report's fault.
type StatusReporter interface {
	Status(ctx context.Context, handle string) (sdk.Status, error)
}

// statusTimeout bounds the one Status call after a revert: the detail is a
// courtesy to the reader and never holds up the time to safety for long.
const statusTimeout = 2 * time.Second

// faultDetail asks a plugin with the Status ability what it has to say of
// a handle it has just reverted. A plugin without the ability, one that
// does not answer in time, or one that answers an error says nothing.
func (r *run) faultDetail(ctx context.Context, h *hold) string {
	sr, ok := h.plugin.(StatusReporter)
	if !ok || r.silent.marked(h.name) {
		return ""
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusTimeout)
	defer cancel()
	st, err := sr.Status(sctx, h.handle)
	if err != nil {
		r.log.Info("fault status after revert", "plugin", h.name, "error", err)
		return ""
	}
	return st.Detail
}
