package probes

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/chaos-run/chaos/experiments"
)

// Every probe reads at most its maxResponse of one answer (an HTTP body, a
// Prometheus answer, each of a command's outputs): an answer that never
// ends must cost the runner a bounded amount of memory, not all of it. An
// HTTP or Prometheus answer that is larger fails the observation, saying
// so: half a body or half a query result is not something to judge a
// hypothesis on. A command's output is cut and the observation marked
// truncated, since its exit code still says what the command found.

// ErrResponseTooLarge is why an observation failed when the answer was
// larger than the probe's maxResponse.
var ErrResponseTooLarge = errors.New("response too large")

// responseCapper is implemented by probers that read answers; Registry.New
// gives each its probe's cap.
type responseCapper interface {
	capResponse(n experiments.ByteSize)
}

// tooLarge is the error of an answer larger than n, as observations say it.
func tooLarge(n experiments.ByteSize) error {
	return fmt.Errorf("response larger than %s (the probe's maxResponse): %w", n, ErrResponseTooLarge)
}

// cappedBody reads at most max bytes of r; reading past them is an error
// (tooLarge), so that a reader never mistakes a cut answer for the answer.
type cappedBody struct {
	r    io.ReadCloser
	max  experiments.ByteSize
	read int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	room := int64(b.max) - b.read
	if room < 0 {
		return 0, tooLarge(b.max)
	}
	// One byte past the cap tells "exactly max" from "more than max".
	if int64(len(p)) > room+1 {
		p = p[:room+1]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.read > int64(b.max) {
		return n - int(b.read-int64(b.max)), tooLarge(b.max)
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.r.Close() }

// readCapped reads all of r, or fails with tooLarge past max bytes.
func readCapped(r io.ReadCloser, max experiments.ByteSize) ([]byte, error) {
	return io.ReadAll(&cappedBody{r: r, max: max})
}

// capTransport caps the body of every answer it passes on. Its max is set
// once, when Registry.New builds the probe, before any request.
type capTransport struct {
	next http.RoundTripper
	max  experiments.ByteSize
}

func (t *capTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp == nil || resp.Body == nil {
		return resp, err
	}
	max := t.max
	if max <= 0 {
		max = experiments.DefaultMaxResponse
	}
	resp.Body = &cappedBody{r: resp.Body, max: max}
	return resp, nil
}
