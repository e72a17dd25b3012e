package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weft-dev/weft/internal/status"
)

// statusCommand is `weft-agent status`: it asks a running agent what it
// does for each traced process, and why not, and prints it as a table.
func statusCommand(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("weft-agent status", flag.ContinueOnError)
	addr := fs.String("addr", "", "the agent's status address (default: WEFT_STATUS_LOCAL_ADDR or 127.0.0.1:9465, then WEFT_STATUS_ADDR or 127.0.0.1:9464)")
	asJSON := fs.Bool("json", false, "print the agent's JSON as it is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// /status is served only on loopback: on its own listener when the
	// public address is not loopback, else on the public one.
	candidates := []string{*addr}
	if *addr == "" {
		candidates = []string{envOr("WEFT_STATUS_LOCAL_ADDR", "127.0.0.1:9465"), envOr("WEFT_STATUS_ADDR", "127.0.0.1:9464")}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	var resp *http.Response
	var errs []error
	for _, a := range candidates {
		r, err := client.Get("http://" + a + "/status")
		if err != nil {
			errs = append(errs, fmt.Errorf("asking the agent at %s: %w", a, err))
			continue
		}
		if r.StatusCode != http.StatusOK {
			r.Body.Close()
			errs = append(errs, fmt.Errorf("asking the agent at %s: %s", a, r.Status))
			continue
		}
		resp = r
		break
	}
	if resp == nil {
		return errors.Join(errs...)
	}
	defer resp.Body.Close()
	if *asJSON {
		_, err := io.Copy(out, resp.Body)
		return err
	}
	var rep status.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return fmt.Errorf("reading the agent's status: %w", err)
	}
	status.WriteReport(out, rep)
	return nil
}
