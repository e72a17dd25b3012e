package k8smeta

import (
	"strings"
	"testing"
)

const (
	cid  = "3f9a1c0d5e7b2a4c6d8e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
	uid  = "7c2e5f1a-9b3d-4e6f-8a0b-1c2d3e4f5a6b"
	uidU = "7c2e5f1a_9b3d_4e6f_8a0b_1c2d3e4f5a6b"
)

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       Ref
	}{
		{"v2 systemd containerd burstable",
			"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n",
			Ref{cid, uid}},
		{"v2 systemd crio guaranteed",
			"0::/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-" + cid + ".scope\n",
			Ref{cid, uid}},
		{"v2 systemd docker besteffort",
			"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/docker-" + cid + ".scope",
			Ref{cid, uid}},
		{"v2 cgroupfs containerd",
			"0::/kubepods/besteffort/pod" + uid + "/" + cid + "\n",
			Ref{cid, uid}},
		{"v2 seen from another cgroup namespace",
			"0::/../../kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n",
			Ref{cid, uid}},
		{"v1 cgroupfs",
			"12:pids:/kubepods/burstable/pod" + uid + "/" + cid + "\n" +
				"11:memory:/kubepods/burstable/pod" + uid + "/" + cid + "\n" +
				"1:name=systemd:/kubepods/burstable/pod" + uid + "/" + cid + "\n",
			Ref{cid, uid}},
		{"v1 systemd containerd colon form",
			"5:cpu,cpuacct:/system.slice/containerd.service/kubepods-burstable-pod" + uidU + ".slice:cri-containerd:" + cid + "\n",
			Ref{cid, uid}},
		{"v1 plain docker",
			"4:memory:/docker/" + cid + "\n", Ref{ContainerID: cid}},
		{"docker scope outside kubernetes",
			"0::/system.slice/docker-" + cid + ".scope\n", Ref{ContainerID: cid}},
		{"static pod md5 uid",
			"0::/kubepods/pod0123456789abcdef0123456789abcdef/" + cid + "\n",
			Ref{cid, "0123456789abcdef0123456789abcdef"}},
		{"pod cgroup only (pause-less process)",
			"0::/kubepods.slice/kubepods-pod" + uidU + ".slice\n", Ref{PodUID: uid}},
		{"crio conmon is not the container",
			"0::/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + cid + ".scope\n", Ref{PodUID: uid}},
		{"host process", "0::/user.slice/user-0.slice/session-3.scope\n", Ref{}},
		{"v2 inside own namespace", "0::/\n", Ref{}},
		{"short id", "0::/docker/abc123\n", Ref{}},
		{"upper-case hex is not an id", "0::/docker/" + strings.ToUpper(cid) + "\n", Ref{}},
		{"empty", "", Ref{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseCgroup(tc.text); got != tc.want {
				t.Errorf("ParseCgroup(%q)\n got %+v\nwant %+v", tc.text, got, tc.want)
			}
		})
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n")
	f.Add("12:pids:/kubepods/burstable/pod" + uid + "/" + cid + "\n")
	f.Add("5:cpu:/a.slice:cri-containerd:" + cid)
	f.Fuzz(func(t *testing.T, text string) {
		r := ParseCgroup(text)
		if r.ContainerID != "" && (len(r.ContainerID) != 64 || !isHex(r.ContainerID)) {
			t.Fatalf("bad container ID %q", r.ContainerID)
		}
		if r.PodUID != "" && (strings.Contains(r.PodUID, "_") ||
			!strings.Contains(text, r.PodUID) && !strings.Contains(text, strings.ReplaceAll(r.PodUID, "-", "_"))) {
			t.Fatalf("bad pod UID %q", r.PodUID)
		}
		if r.ContainerID != "" && !strings.Contains(text, r.ContainerID) {
			t.Fatalf("container ID %q not in input", r.ContainerID)
		}
	})
}
