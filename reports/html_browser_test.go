package reports_test

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// chromium finds a headless browser, or skips the test when there is none
// and none can be installed here; as root, a missing browser is a failure,
// since `make deps` (scripts/deps.sh) installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		t.Fatal("chromium is missing; as root, install it with scripts/deps.sh (make deps), which the HTML report's screenshot test needs")
	}
	t.Skip("chromium is missing and this is not root, so it cannot be installed: skipping the screenshot of the HTML report (scripts/deps.sh installs it as root)")
	return ""
}

// TestHTMLChartIsDrawnByABrowser opens the report of an aborted run in
// headless Chromium, screenshots it and checks that the chart is drawn: the
// probe's line, in its colour, runs across most of the width, and passes
// through the shaded fault window; failed observations are marked in red.
func TestHTMLChartIsDrawnByABrowser(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(page, render(t, reports.HTML{}, abortedRecord()), 0o644))
	shot := filepath.Join(dir, "report.png")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+shot, "--window-size=1200,1600", "file://"+page)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium must screenshot the report:\n%s", out)
	f, err := os.Open(shot)
	require.NoError(t, err, "chromium must write the screenshot")
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "the screenshot must be a PNG")

	series := hexColour(t, reports.SeriesColour(0))
	// The fault window: amber at 22% over white.
	window := [3]int{253, 236, 208}
	red := [3]int{0xd1, 0x24, 0x2f}

	b := img.Bounds()
	seriesCols := map[int]bool{}
	var windowBox image.Rectangle
	var redPixels int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgb(img, x, y)
			if near(c, window, 6) {
				windowBox = windowBox.Union(image.Rect(x, y, x+1, y+1))
			}
			if near(c, red, 30) {
				redPixels++
			}
		}
	}
	require.False(t, windowBox.Empty(), "the fault window must be shaded in the chart")
	inWindow := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if near(rgb(img, x, y), series, 40) {
				seriesCols[x] = true
				if (image.Point{X: x, Y: y}).In(windowBox) {
					inWindow++
				}
			}
		}
	}
	require.Greater(t, len(seriesCols), b.Dx()/2,
		"the probe's line must be drawn across most of the chart's width in its colour %s (found it in %d of %d columns)", reports.SeriesColour(0), len(seriesCols), b.Dx())
	require.Greater(t, inWindow, 20, "the line must pass through the shaded fault window (chart area %v)", windowBox)
	require.Greater(t, redPixels, 50, "failed observations and the breach must be marked in red")
}

func rgb(img image.Image, x, y int) [3]int {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
}

func near(c, want [3]int, tol int) bool {
	for i := range c {
		if d := c[i] - want[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

func hexColour(t *testing.T, s string) [3]int {
	t.Helper()
	require.Len(t, s, 7, "a colour is #rrggbb")
	var c [3]int
	for i := range c {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		require.NoError(t, err)
		c[i] = int(v)
	}
	return c
}
