package main

import (
	"errors"
	"testing"
)

func TestCgroupMemoryMax(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"v2 limit", map[string]string{"/proc/self/cgroup": "0::/kubepods/pod1/c1\n", "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "536870912\n"}, 536870912, true},
		{"v2 no limit", map[string]string{"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max\n"}, 0, false},
		{"v1 limit", map[string]string{"/proc/self/cgroup": "5:memory:/kubepods/x\n0::/\n", "/sys/fs/cgroup/memory/kubepods/x/memory.limit_in_bytes": "268435456"}, 268435456, true},
		{"v1 unlimited", map[string]string{"/proc/self/cgroup": "5:cpu,memory:/x\n", "/sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712"}, 0, false},
		{"unreadable", map[string]string{}, 0, false},
	} {
		got, ok := cgroupMemoryMax(files(tc.files))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %d %v, want %d %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
