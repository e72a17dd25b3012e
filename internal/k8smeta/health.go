package k8smeta

import (
	"context"

	"github.com/weft-dev/weft/internal/tick"
)

// watchAPIServer asks the API server's /readyz every interval and logs
// each change: informers retry a refused connection silently (client-go
// logs that only at -v=4), so without this an outage would go unsaid.
// APIServerUp reports the last answer.
func (s *Store) watchAPIServer(ctx context.Context) {
	t := tick.NewTimer(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		probe, cancel := context.WithTimeout(ctx, s.cfg.HealthInterval)
		err := s.cfg.Client.Ready(probe)
		cancel()
		if ctx.Err() != nil {
			return
		}
		was := s.apiUp.Swap(err == nil)
		switch {
		case err != nil && was:
			s.log.Warn("k8smeta: API server unreachable; serving cached metadata and retrying", "err", err)
		case err == nil && !was:
			s.log.Info("k8smeta: API server reachable again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(s.cfg.HealthInterval)
	}
}

// APIServerUp says whether the API server answered its last health check.
func (s *Store) APIServerUp() bool { return s.apiUp.Load() }
