// Command shortclient is a short-lived, unmodified net/http client used as
// a traced program in weft's tests: it makes exactly one request and exits
// at once, as a CLI tool, a cron job or a health-check probe does. Its
// whole life is a few milliseconds, so a tracer that attaches to it late
// misses its call.
//
//	shortclient -url http://HOST:PORT/PATH   one GET (http.DefaultClient),
//	                                         print the status code
//
// It exits 1 when the request fails. (The gRPC counterpart is
// testdata/grpcserver -call ADDR SERVICE, which makes one unary call and
// exits: the grpc-go dependency lives in that module.)
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	u := flag.String("url", "", "the URL to GET once")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of the request")
	flag.Parse()
	if *u == "" {
		fmt.Fprintln(os.Stderr, "shortclient: -url is required")
		os.Exit(2)
	}
	http.DefaultClient.Timeout = *timeout
	resp, err := http.Get(*u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shortclient:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
}
