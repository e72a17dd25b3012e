// Package statusserver serves the agent's operational endpoints.
//
// Two listeners, because their audiences differ:
//
//   - the public one (Config.PublicAddr; in the DaemonSet 0.0.0.0:9464),
//     reached by Prometheus and the kubelet's probes: /metrics, /healthz,
//     /readyz, and /debug/pprof/ if asked for;
//   - the local one (Config.LocalAddr, loopback only; 127.0.0.1:9465 by
//     default), reached from inside the pod (kubectl exec ... weft-agent
//     status): the same, plus /status.
//
// /status lists every traced process with its executable, Go and library
// versions: a map of what to attack, so it is not served where the pod
// network reaches. When the public address is itself loopback (the
// agent's default outside Kubernetes) it serves /status as well and the
// local listener is not opened, unless Config.StatusLocalOnly.
package statusserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// Metrics writes the Prometheus text exposition (*metrics.Registry).
type Metrics interface {
	WriteText(w io.Writer) error
}

// Config says what to serve where. Every field is optional.
type Config struct {
	// PublicAddr serves /metrics, /healthz, /readyz (and pprof); "" for no
	// public listener.
	PublicAddr string
	// LocalAddr serves all of the above and /status. Its host must be a
	// loopback address (Start refuses others); "" for no local listener.
	LocalAddr string
	// StatusLocalOnly keeps /status off the public listener even when it is
	// bound to a loopback address (the local listener is then opened).
	StatusLocalOnly bool
	// Pprof serves Go profiles under /debug/pprof/ on both listeners.
	Pprof bool

	Metrics Metrics      // /metrics; nil: not served
	Status  http.Handler // /status (status.Board); nil: not served
	Ready   func() bool  // /readyz; nil: always ready
	Live    *Liveness    // /healthz; nil: always ok
	Log     *slog.Logger // nil: discard
}

// Server is the running listeners.
type Server struct {
	public, local  *http.Server
	publicAddr     string
	localAddr      string
	statusOnPublic bool
	shutdownOnce   sync.Once
	shutdownErr    error
	log            *slog.Logger
}

// statusElsewhere answers /status on a listener the pod network reaches.
const statusElsewhere = "/status is served only on the agent's loopback address (-status-local-addr): run `weft-agent status` inside its container (kubectl exec)"

// Start opens the listeners, synchronously so that a taken or malformed
// address is an error here, and serves them in the background until
// Shutdown.
func Start(cfg Config) (*Server, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log}
	var pubLn, locLn net.Listener
	if cfg.PublicAddr != "" {
		ln, err := net.Listen("tcp", cfg.PublicAddr)
		if err != nil {
			return nil, fmt.Errorf("listening for status on %s: %w", cfg.PublicAddr, err)
		}
		pubLn = ln
		s.publicAddr = ln.Addr().String()
		s.statusOnPublic = isLoopback(ln.Addr()) && !cfg.StatusLocalOnly
	}
	if cfg.LocalAddr != "" && !s.statusOnPublic {
		ln, err := net.Listen("tcp", cfg.LocalAddr)
		if err == nil && !isLoopback(ln.Addr()) {
			ln.Close()
			err = errors.New("not a loopback address: /status must not be reachable from outside the pod")
		}
		if err != nil {
			if pubLn != nil {
				pubLn.Close()
			}
			return nil, fmt.Errorf("listening for local status on %s: %w", cfg.LocalAddr, err)
		}
		locLn = ln
		s.localAddr = ln.Addr().String()
	}

	if pubLn != nil {
		s.public = newHTTPServer(mux(cfg, s.statusOnPublic))
		go s.serve(s.public, pubLn)
		log.Info("status endpoint", "addr", s.publicAddr, "status", s.statusOnPublic, "pprof", cfg.Pprof)
	}
	if locLn != nil {
		s.local = newHTTPServer(mux(cfg, true))
		go s.serve(s.local, locLn)
		log.Info("local status endpoint", "addr", s.localAddr)
	}
	if cfg.Status != nil && !s.statusOnPublic && locLn == nil {
		log.Warn("/status is not served: no loopback status address")
	}
	return s, nil
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("status server", "addr", ln.Addr().String(), "err", err)
	}
}

// mux builds one listener's handler; withStatus adds /status.
func mux(cfg Config, withStatus bool) *http.ServeMux {
	m := http.NewServeMux()
	if cfg.Metrics != nil {
		m.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			if err := cfg.Metrics.WriteText(w); err != nil && cfg.Log != nil {
				cfg.Log.Debug("writing /metrics", "err", err)
			}
		})
	}
	m.Handle("/healthz", cfg.Live) // a nil *Liveness answers ok
	// Ready once the probes are attached, discovery has scanned and, in
	// Kubernetes, the pod metadata cache has synced.
	m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if cfg.Ready != nil && !cfg.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if cfg.Status != nil {
		if withStatus {
			m.Handle("/status", cfg.Status)
		} else {
			m.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, statusElsewhere, http.StatusNotFound)
			})
		}
	}
	if cfg.Pprof {
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return m
}

// isLoopback reports whether a bound address is reachable only from this
// network namespace.
func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// PublicAddr is the bound public address ("" if none): with port 0, the
// port chosen.
func (s *Server) PublicAddr() string {
	if s == nil {
		return ""
	}
	return s.publicAddr
}

// LocalAddr is the bound local address, "" if none was opened.
func (s *Server) LocalAddr() string {
	if s == nil {
		return ""
	}
	return s.localAddr
}

// StatusAddr is where /status is served: the local address, or the public
// one when it is loopback; "" if nowhere.
func (s *Server) StatusAddr() string {
	switch {
	case s == nil:
		return ""
	case s.statusOnPublic:
		return s.publicAddr
	}
	return s.localAddr
}

// Shutdown stops both listeners and waits for their requests until ctx
// ends. Safe twice and on a nil *Server; later calls return the first's
// result.
func (s *Server) Shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	s.shutdownOnce.Do(func() {
		var errs []error
		for _, srv := range []*http.Server{s.public, s.local} {
			if srv != nil {
				errs = append(errs, srv.Shutdown(ctx))
			}
		}
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}
