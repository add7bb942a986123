package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// waitReady polls the API server's /readyz with the admin credentials until
// it answers 200, the component exits, or a generous limit passes.
func waitReady(ctx context.Context, server string, f credentials, api *child) error {
	caPEM, err := os.ReadFile(f.caCert)
	if err != nil {
		return fmt.Errorf("read ca: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(f.adminCert, f.adminKey)
	if err != nil {
		return fmt.Errorf("load admin certificate: %w", err)
	}
	hc := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
		}},
	}
	defer hc.CloseIdleConnections()

	const limit = 3 * time.Minute
	deadline := time.After(limit)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readyz request: %w", err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for api server: %w", ctx.Err())
		case <-api.done:
			return fmt.Errorf("kube-apiserver: %w: %w", errChildExited, api.err)
		case <-deadline:
			return fmt.Errorf("%w after %s (last: %s)", errNotReady, limit, last)
		case <-tick.C:
		}
	}
}
