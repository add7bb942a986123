package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrAlertmanager is the cause of an Alertmanager that could not be asked
// (did not answer in time, answered with an error, or with nonsense).
var ErrAlertmanager = errors.New("alertmanager could not be asked")

// Alertmanager asks a Prometheus Alertmanager (API v2) which alerts are
// firing. Every call is bounded by Timeout.
type Alertmanager struct {
	URL     string
	Timeout time.Duration
	// Client defaults to a plain http.Client.
	Client *http.Client
}

// Firing returns the names of the active alerts (not silenced, not
// inhibited) that carry every one of labels, sorted.
func (a *Alertmanager) Firing(ctx context.Context, labels map[string]string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	q := url.Values{"active": {"true"}, "silenced": {"false"}, "inhibited": {"false"}}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		q.Add("filter", k+"="+strconv.Quote(labels[k]))
	}
	u := strings.TrimRight(a.URL, "/") + "/api/v2/alerts?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAlertmanager, err)
	}
	c := a.Client
	if c == nil {
		c = &http.Client{}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAlertmanager, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read the answer: %w", ErrAlertmanager, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", ErrAlertmanager, a.URL, resp.Status)
	}
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal(body, &alerts); err != nil {
		return nil, fmt.Errorf("%w: the answer is not a list of alerts: %w", ErrAlertmanager, err)
	}
	var names []string
	for _, al := range alerts {
		if al.Status.State != "active" || !matches(al.Labels, labels) {
			continue // the filter is the server's; this is not trusting it blindly
		}
		names = append(names, al.Labels["alertname"])
	}
	sort.Strings(names)
	return names, nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
