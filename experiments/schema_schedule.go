package experiments

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Each kind of file has its own schema (decided over one schema with a
// oneOf on kind: an editor's modeline names one kind's schema and gets
// that kind's completions and errors, and the experiment schema stays as
// it was). `chaos schema --kind K` prints them.

// ScheduleSchemaID and GameDaySchemaID are where the schemas of the other
// kinds are published.
const (
	ScheduleSchemaID = "https://raw.githubusercontent.com/chaos-run/chaos/main/experiments/schedule.schema.json"
	GameDaySchemaID  = "https://raw.githubusercontent.com/chaos-run/chaos/main/experiments/gameday.schema.json"
)

// Kinds are the kinds of file the format knows.
func Kinds() []string { return []string{KindExperiment, KindSchedule, KindGameDay} }

// JSONSchemaOf returns the JSON Schema of the files of kind, indented,
// with a final newline.
func JSONSchemaOf(kind string, opts SchemaOptions) ([]byte, error) {
	switch kind {
	case KindExperiment:
		return JSONSchema(opts)
	case KindSchedule:
		return kindSchema(reflect.TypeOf(Schedule{}), ScheduleSchemaID, "chaos schedule ("+APIVersion+")",
			"A schedule file of chaos: entries that run experiment files on cron, in allowed windows, outside freezes. `chaos validate` checks much more than this schema.")
	case KindGameDay:
		return kindSchema(reflect.TypeOf(GameDay{}), GameDaySchemaID, "chaos game day ("+APIVersion+")",
			"A game day file of chaos: experiments in order, with checkpoints where a person confirms.")
	}
	return nil, fmt.Errorf("no kind %q (kinds: %s): %w", kind, strings.Join(Kinds(), ", "), ErrUnknownKind)
}

// ErrUnknownKind is a kind of file the format does not know.
var ErrUnknownKind = errors.New("unknown kind")

func kindSchema(t reflect.Type, id, title, desc string) ([]byte, error) {
	g := &schemaGen{defs: map[string]*jsonObject{}, seen: map[reflect.Type]bool{}}
	return g.document(g.structSchema(t), id, title, desc)
}
