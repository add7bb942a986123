package experiments_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// TestBadScheduleFiles checks every schedule and game day of
// testdata/schedules/bad against its golden file, as TestBadFiles does for
// experiments: every problem at once, each at file:line:col with a hint.
func TestBadScheduleFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/schedules/bad/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(data), "# "), "a bad file starts with a comment saying what its mistake is")
			switch kind := experiments.KindOf(data); kind {
			case experiments.KindGameDay:
				_, err = experiments.ParseGameDay(f, data)
			default:
				_, err = experiments.ParseSchedule(f, data)
			}
			require.ErrorIs(t, err, experiments.ErrInvalid, "a bad file must not load")
			var fe *experiments.FileError
			require.ErrorAs(t, err, &fe)
			for _, p := range fe.Problems {
				require.Positive(t, p.Pos.Line, "every problem has a line: %s", fe.Format(p))
				require.Positive(t, p.Pos.Col, "every problem has a column: %s", fe.Format(p))
			}
			got := strings.ReplaceAll(fe.Error(), f, filepath.Base(f)) + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test ./experiments -run TestBadScheduleFiles -update")
			require.Equal(t, string(want), got, "the problems of %s changed; if that is intended, go test -update and review the diff", f)
		})
	}
}

// TestGoodSchedule loads a schedule that uses every field and checks what
// validation fills in and compiles.
func TestGoodSchedule(t *testing.T) {
	s, err := experiments.LoadSchedule("testdata/schedules/good/weekdays.yaml")
	require.NoError(t, err, "the good schedule loads")
	require.Len(t, s.Spec.Entries, 2)
	every := s.Entry("everything")
	require.NotNil(t, every)
	require.Equal(t, time.Minute, every.StartingDeadline, "startingDeadline defaults to 1m")
	require.Equal(t, "America/New_York", s.Location(every).String(), "an entry's own time zone wins")
	require.Equal(t, "Europe/Berlin", s.Location(s.Entry("latency")).String(), "the schedule's time zone is the default")
	require.Len(t, s.Windows(every), 1, "an entry's own windows replace the schedule's")
	require.Equal(t, "mon,tue,wed,thu,fri 10:00-16:00", s.Windows(s.Entry("latency"))[0].String())
	files, err := experiments.ExpandExperiments(s.File, every.Experiments[0])
	require.NoError(t, err)
	require.Len(t, files, 2, "a glob names both experiment files, relative to the schedule")
	fr := s.Freezes()
	require.Len(t, fr, 2)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	require.True(t, fr[0].Contains(time.Date(2026, 1, 5, 23, 59, 0, 0, berlin)), "the to day is part of the freeze")
	require.False(t, fr[0].Contains(time.Date(2026, 1, 6, 0, 0, 0, 0, berlin)), "the day after is not")

	_, err = experiments.LoadGameDay("testdata/schedules/good/gameday.yaml")
	require.NoError(t, err, "the good game day loads")
}

// TestKindOf is what `chaos validate` dispatches on.
func TestKindOf(t *testing.T) {
	require.Equal(t, experiments.KindSchedule, experiments.KindOf([]byte("apiVersion: chaos/v1\nkind: Schedule\n")))
	require.Equal(t, "", experiments.KindOf([]byte("{{")), "a file that does not parse has no kind; its loader says why")
}

// TestScheduleSchemas: every kind has a schema, and the good files are
// valid JSON Schema documents' subjects in shape (the schema compiles).
func TestScheduleSchemas(t *testing.T) {
	for _, k := range experiments.Kinds() {
		b, err := experiments.JSONSchemaOf(k, experiments.SchemaOptions{})
		require.NoError(t, err, "schema of %s", k)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc), "the schema of %s is JSON", k)
	}
	_, err := experiments.JSONSchemaOf("Cronjob", experiments.SchemaOptions{})
	require.ErrorIs(t, err, experiments.ErrUnknownKind)
}
