package main

import (
	"encoding/json"
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
	addr := fs.String("addr", envOr("WEFT_STATUS_ADDR", "127.0.0.1:9464"), "the agent's status address")
	asJSON := fs.Bool("json", false, "print the agent's JSON as it is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + *addr + "/status")
	if err != nil {
		return fmt.Errorf("asking the agent at %s: %w", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asking the agent at %s: %s", *addr, resp.Status)
	}
	if *asJSON {
		_, err := io.Copy(out, resp.Body)
		return err
	}
	var procs []status.Process
	if err := json.NewDecoder(resp.Body).Decode(&procs); err != nil {
		return fmt.Errorf("reading the agent's status: %w", err)
	}
	if len(procs) == 0 {
		fmt.Fprintln(out, "no process traced")
		return nil
	}
	status.WriteTable(out, procs)
	return nil
}
