// Command grpcserver is an ordinary grpc-go server and client used as an
// unmodified traced program in weft's tests. It serves the standard health
// service (no generated code of its own) with a Check that answers by the
// service name asked: "" OK, "missing" NotFound, "internal" Internal,
// "slow" sleeps 300 ms (callers with shorter deadlines see
// DeadlineExceeded); Watch streams three updates.
//
// A Check whose service is "hop NEXT..." is a relay: NEXT is a
// space-separated list of hops (grpc://HOST:PORT or http://HOST:PORT); the
// handler calls the first one, handing it the rest, and answers with the
// code that call got. With -http it serves HTTP/1.1 instead, where
// GET /hop?next=LIST&id=ANY relays the same way (200 "ok", 502 on failure).
// Pseudo-hops act where they stand in the list: "sleep=D" waits D
// (a slow service), "fail" answers Internal (a broken one), "forward"
// copies the incoming call's traceparent metadata onto the gRPC calls the
// rest makes (a proxy that forwards metadata), "twice" makes the rest
// twice, one after the other (a retry, a fan-out to one backend).
// Every hop shares one connection per target: one *grpc.ClientConn (many
// streams on one HTTP/2 connection) or one keep-alive http.Client.
//
// The program knows nothing of tracing and propagates nothing itself; with
// -own-traceparent (or $GRPCSERVER_OWN_TRACEPARENT) its gRPC calls carry that
// "traceparent" metadata, as a program with its own tracing SDK would; with
// -md KEY=VALUE (repeatable; also per line of -stdin) they carry that
// metadata, as a mesh's sidecar or a caller with B3 propagation would.
//
// The same source builds against grpc-go v1.50 up to the newest
// (go.mod, go.v1.66.mod, go.v1.50.mod): it uses no newer API.
//
// With -cert and -key (PEM files) it serves gRPC over TLS; with -cert its
// gRPC calls use TLS and trust that certificate.
//
//	grpcserver [-http] [-addr A]       serve on A (127.0.0.1:0), print "LISTEN <port>"
//	grpcserver -call ADDR SERVICE      call Check once, print the status code
//	grpcserver -call ADDR -watch       call Watch, read the stream to its end
//	grpcserver -call ADDR -stdin       one call a line: [-watch] [-timeout D] [-md K=V]... [SERVICE]
//	grpcserver -load ADDR [-c N] [-d D] N goroutines call Check ("") on one
//	                                   connection for D, print "LOAD calls=..
//	                                   errors=.. rps=.. p50_us=.. p99_us=.."
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ownTraceparent, when set, is sent as metadata on every gRPC call made.
var ownTraceparent string

// mdFlag is a repeatable KEY=VALUE flag: metadata for the calls made.
type mdFlag []string

func (m *mdFlag) String() string { return strings.Join(*m, ",") }

func (m *mdFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*m = append(*m, strings.ToLower(k), val)
	return nil
}

// callMD (-md) is sent as metadata on every gRPC call made.
var callMD mdFlag

// creds are the gRPC calls' transport credentials: plaintext unless -cert.
var creds = insecure.NewCredentials()

type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch {
	case req.Service == "missing":
		return nil, status.Error(codes.NotFound, "no such service")
	case req.Service == "internal":
		return nil, status.Error(codes.Internal, "it broke")
	case req.Service == "slow":
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case req.Service == "hop" || strings.HasPrefix(req.Service, "hop "):
		if err := relay(ctx, strings.TrimPrefix(req.Service, "hop")); err != nil {
			return nil, grpcError(err)
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (health) Watch(req *healthpb.HealthCheckRequest, s healthpb.Health_WatchServer) error {
	for i := 0; i < 3; i++ {
		if err := s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	return nil
}

// grpcError gives a relay failure the code it had, if it had one.
func grpcError(err error) error {
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

var (
	connsMu sync.Mutex
	conns   = map[string]*grpc.ClientConn{}
	// client is shared by every handler, as real services share one.
	client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	// tlsClient makes the https:// hops (-http-ca): HTTP/2 by ALPN.
	tlsClient *http.Client
)

// conn returns the process's one connection to target.
func conn(target string) (*grpc.ClientConn, error) {
	connsMu.Lock()
	defer connsMu.Unlock()
	if c := conns[target]; c != nil {
		return c, nil
	}
	c, err := grpc.Dial(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	conns[target] = c
	return c, nil
}

// forwardKey keys the traceparent a "forward" hop copies onto the calls
// after it.
type forwardKey struct{}

func outgoing(ctx context.Context, md ...string) context.Context {
	if tp, ok := ctx.Value(forwardKey{}).(string); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", tp)
	}
	if ownTraceparent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", ownTraceparent)
	}
	if len(callMD) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, callMD...)
	}
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return ctx
}

// relay calls the first hop of the space-separated list, handing it the rest.
func relay(ctx context.Context, list string) error {
	hops := strings.Fields(list)
	if len(hops) == 0 {
		return nil
	}
	rest := strings.Join(hops[1:], " ")
	switch {
	case hops[0] == "fail":
		return status.Error(codes.Internal, "this service is broken")
	case hops[0] == "forward":
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
			ctx = context.WithValue(ctx, forwardKey{}, md.Get("traceparent")[0])
		}
		return relay(ctx, rest)
	case hops[0] == "twice":
		if err := relay(ctx, rest); err != nil {
			return err
		}
		return relay(ctx, rest)
	case hops[0] == "nocontext":
		// The rest without this request's context, as handlers that call
		// http.Get or use context.Background() do.
		return relay(context.Background(), rest)
	case hops[0] == "spawn":
		// The rest from a goroutine this one starts and waits for, with
		// the same context (errgroup, a worker per request).
		errc := make(chan error, 1)
		go func() { errc <- relay(ctx, rest) }()
		return <-errc
	case strings.HasPrefix(hops[0], "sleep="):
		d, err := time.ParseDuration(strings.TrimPrefix(hops[0], "sleep="))
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "hop %q: %v", hops[0], err)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
		return relay(ctx, rest)
	case strings.HasPrefix(hops[0], "grpc://"):
		c, err := conn(strings.TrimPrefix(hops[0], "grpc://"))
		if err != nil {
			return err
		}
		service := ""
		if rest != "" {
			service = "hop " + rest
		}
		_, err = healthpb.NewHealthClient(c).Check(outgoing(ctx), &healthpb.HealthCheckRequest{Service: service})
		return err
	case strings.HasPrefix(hops[0], "http://"), strings.HasPrefix(hops[0], "https://"):
		req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(hops[0], "/")+"/hop?next="+url.QueryEscape(rest), nil)
		if err != nil {
			return err
		}
		c := client
		if req.URL.Scheme == "https" {
			if tlsClient == nil {
				return status.Errorf(codes.InvalidArgument, "hop %q: no -http-ca", hops[0])
			}
			c = tlsClient // HTTP/2, by ALPN
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return status.Errorf(codes.Unavailable, "%s answered %s", hops[0], resp.Status)
		}
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "hop %q: want grpc://, http:// or https://", hops[0])
}

func hopHandler(w http.ResponseWriter, r *http.Request) {
	if err := relay(r.Context(), r.URL.Query().Get("next")); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	io.WriteString(w, "ok")
}

func dial(addr string) *grpc.ClientConn {
	c, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// callOnce calls Check (or Watch), with md (key, value pairs) added to its
// metadata, and gives the status code's name.
func callOnce(conn *grpc.ClientConn, watch bool, timeout time.Duration, service string, md ...string) codes.Code {
	ctx, cancel := context.WithTimeout(outgoing(context.Background(), md...), timeout)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	if watch {
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
		for err == nil {
			_, err = stream.Recv()
		}
		if err == io.EOF {
			err = nil
		}
		return status.Code(err)
	}
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return status.Code(err)
}

// callLines makes one call per line of standard input, "[-watch]
// [-timeout D] [-md K=V]... [SERVICE...]", on one connection dialled at the first line
// (so a tracer can be attached before any byte is sent), and prints each
// status code.
func callLines(addr string, timeout time.Duration) {
	var conn *grpc.ClientConn
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		fs := flag.NewFlagSet("call", flag.ContinueOnError)
		watch := fs.Bool("watch", false, "")
		d := fs.Duration("timeout", timeout, "")
		var md mdFlag
		fs.Var(&md, "md", "")
		if err := fs.Parse(strings.Fields(lines.Text())); err != nil {
			fmt.Println("BadLine")
			continue
		}
		if conn == nil {
			conn = dial(addr)
		}
		fmt.Println(callOnce(conn, *watch, *d, strings.Join(fs.Args(), " "), md...))
	}
}

// load drives Check ("" service) from conc goroutines over one shared
// connection for d, then prints the calls made, the errors, the rate and
// the median and 99th-percentile latencies. Each goroutine reuses its
// request and records latencies into its own slice; they are merged at the
// end, so the loop itself allocates only what grpc-go does.
func load(addr string, conc int, d, timeout time.Duration) {
	if conc < 1 {
		conc = 1
	}
	conn := dial(addr)
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	// One deadline for the whole run (plus a call's timeout) instead of a
	// context per call.
	ctx, cancel := context.WithTimeout(outgoing(context.Background()), d+timeout)
	defer cancel()
	type result struct {
		lat    []uint32 // microseconds
		errors int
	}
	results := make([]result, conc)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range results {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			req := &healthpb.HealthCheckRequest{}
			r.lat = make([]uint32, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				_, err := client.Check(ctx, req)
				if err != nil {
					r.errors++
					if ctx.Err() != nil {
						return
					}
					continue
				}
				r.lat = append(r.lat, uint32(time.Since(t0)/time.Microsecond))
			}
		}(&results[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []uint32
	errs := 0
	for _, r := range results {
		all = append(all, r.lat...)
		errs += r.errors
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(q float64) uint32 {
		if len(all) == 0 {
			return 0
		}
		return all[int(q*float64(len(all)-1))]
	}
	calls := len(all) + errs
	fmt.Printf("LOAD calls=%d errors=%d rps=%.0f p50_us=%d p99_us=%d\n",
		calls, errs, float64(len(all))/elapsed.Seconds(), pct(0.50), pct(0.99))
}

func main() {
	call := flag.String("call", "", "call Check on this address instead of serving")
	loadAddr := flag.String("load", "", "generate load: call Check (\"\") on this address from -c goroutines for -d")
	conc := flag.Int("c", 32, "with -load: concurrent callers on the one connection")
	dur := flag.Duration("d", 10*time.Second, "with -load: how long to call")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of the call")
	watch := flag.Bool("watch", false, "with -call: call the server-streaming Watch instead")
	stdin := flag.Bool("stdin", false, "with -call: read calls from standard input, one a line")
	serveHTTP := flag.Bool("http", false, "serve HTTP/1.1 (GET /hop) instead of gRPC")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.StringVar(&ownTraceparent, "own-traceparent", os.Getenv("GRPCSERVER_OWN_TRACEPARENT"),
		"send this traceparent metadata on every gRPC call made")
	cert := flag.String("cert", "", "PEM certificate: gRPC calls use TLS and trust it; with -key, serve TLS")
	key := flag.String("key", "", "PEM key of -cert")
	flag.Var(&callMD, "md", "KEY=VALUE: metadata on every gRPC call made (repeatable)")
	httpCA := flag.String("http-ca", "", "PEM certificate that https:// hops trust (they speak HTTP/2)")
	httpCert := flag.String("http-cert", "", "with -http and -http-key: serve HTTPS (HTTP/2 by ALPN) with this PEM certificate")
	httpKey := flag.String("http-key", "", "PEM key of -http-cert")
	firstReadDelay := flag.Duration("first-read-delay", 0, "serve: wait this long before a connection's first read (a slow or busy server: the client's frames pile up and are read together)")
	workers := flag.Int("workers", envInt("GRPCSERVER_WORKERS"), "grpc.NumStreamWorkers: handlers run in this many reused worker goroutines (0: a goroutine per stream)")
	flag.Parse()
	var serverOpts []grpc.ServerOption
	if *workers > 0 {
		serverOpts = append(serverOpts, grpc.NumStreamWorkers(uint32(*workers)))
	}
	if *cert != "" {
		c, err := credentials.NewClientTLSFromFile(*cert, "")
		if err != nil {
			log.Fatal(err)
		}
		creds = c
	}
	if *cert != "" && *key != "" {
		sc, err := credentials.NewServerTLSFromFile(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		serverOpts = append(serverOpts, grpc.Creds(sc))
	}
	if *httpCA != "" {
		pem, err := os.ReadFile(*httpCA)
		if err != nil {
			log.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 256}}
	}
	if *loadAddr != "" {
		load(*loadAddr, *conc, *dur, *timeout)
		return
	}
	if *call != "" {
		if *stdin {
			callLines(*call, *timeout)
			return
		}
		fmt.Println(callOnce(dial(*call), *watch, *timeout, flag.Arg(0)))
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	if *firstReadDelay > 0 {
		ln = slowListener{ln, *firstReadDelay}
	}
	if *serveHTTP {
		mux := http.NewServeMux()
		mux.HandleFunc("/hop", hopHandler)
		if *httpCert != "" {
			log.Fatal(http.ServeTLS(ln, mux, *httpCert, *httpKey))
		}
		log.Fatal(http.Serve(ln, mux))
	}
	s := grpc.NewServer(serverOpts...)
	healthpb.RegisterHealthServer(s, health{})
	log.Fatal(s.Serve(ln))
}

// envInt reads a number from the environment; 0 when unset or not one.
func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}

// slowListener's connections wait before their first read.
type slowListener struct {
	net.Listener
	delay time.Duration
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, delay: l.delay}, nil
}

type slowConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowConn) Read(b []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Read(b)
}
