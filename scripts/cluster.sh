#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, for `make e2e` and by
# hand: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd, kubelet and a bridge CNI. No systemd: every server is started
# here and stopped by its PID file.
#
#   scripts/cluster.sh up          start it; prints the kubeconfig's path
#   scripts/cluster.sh image NAME CONTEXT [CONTAINERFILE] [BUILD-ARG...]
#                                  build an image with buildah (no registry)
#                                  and import it into the node's containerd
#   scripts/cluster.sh down        stop everything and remove what it made
#
# Debian packages: etcd-server, containerd, runc, containernetworking-plugins,
# iptables, conntrack, buildah. Kubernetes binaries: scripts/k8s-bins.sh
# (built from the Go module proxy, cached). State: $WEFT_CLUSTER_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${WEFT_CLUSTER_DIR:-/var/lib/weft-cluster}"
NODE="${WEFT_NODE_NAME:-weft-node}"
POD_CIDR=10.244.0.0/24
BRIDGE=weft0
ETCD_PORT=23791
API_PORT=6443
SANDBOX_IMAGE=localhost/pause:weft
log() { echo "cluster.sh: $*" >&2; }

deps() {
	local need=()
	command -v etcd >/dev/null || need+=(etcd-server)
	command -v containerd >/dev/null || need+=(containerd)
	command -v runc >/dev/null || need+=(runc)
	[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
	command -v iptables >/dev/null || need+=(iptables)
	command -v conntrack >/dev/null || need+=(conntrack)
	command -v buildah >/dev/null || need+=(buildah)
	command -v openssl >/dev/null || need+=(openssl)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	fi
}

# start NAME CMD...: runs CMD in the background, logs in $DIR/log/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$DIR/log/$name.log" 2>&1 &
	echo $! >"$DIR/run/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	for _ in $(seq $((secs * 4))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.25
	done
	log "$what not ready after ${secs}s; logs in $DIR/log"
	tail -n 20 "$DIR"/log/*.log >&2 || true
	return 1
}

kubectl() { "$BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

write_configs() {
	# The node's address: the source of the default route (kubelet drops a
	# loopback --node-ip, and the API server reaches kubelet there).
	NODE_IP="$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')"
	[ -n "$NODE_IP" ] || NODE_IP="$(hostname -I | awk '{print $1}')"
	mkdir -p "$DIR"/{log,run,pki,etcd,containerd,cni/net.d,cni/ipam,kubelet,pod-logs,buildah}
	if [ ! -f "$DIR/pki/sa.key" ]; then
		openssl genrsa -out "$DIR/pki/sa.key" 2048 2>/dev/null
		openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
	fi
	[ -f "$DIR/pki/token" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/pki/token"
	local token
	token="$(cat "$DIR/pki/token")"
	echo "$token,admin,admin,system:masters" >"$DIR/pki/tokens.csv"
	cat >"$DIR/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: weft
  cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: weft
  context: {cluster: weft, user: admin}
current-context: weft
EOF
	# restrict_oom_score_adj: this machine may not lower oom_score_adj, and
	# without it every sandbox fails ("can't get final child's PID").
	cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$DIR/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
	cat >"$DIR/cni/net.d/10-weft.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "weft",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	# Hybrid cgroups and no systemd: cgroupfs, v1 allowed. Anonymous kubelet
	# API on loopback so that kubectl logs/exec work without client certs.
	cat >"$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$DIR/containerd/containerd.sock
failSwapOn: false
podLogsDir: $DIR/pod-logs
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
}

# pause is the sandbox image: a static Go binary that sleeps until stopped.
pause_image() {
	if ctr_ images ls -q | grep -qx "$SANDBOX_IMAGE"; then return; fi
	local ctx="$DIR/build/pause"
	mkdir -p "$ctx"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$ctx/app" ./testdata/pause)
	image "$SANDBOX_IMAGE" "$ctx" "$ROOT/testdata/pause/Containerfile"
}

ctr_() { ctr --address "$DIR/containerd/containerd.sock" -n k8s.io "$@"; }

# image NAME CONTEXT [CONTAINERFILE] [BUILD-ARG...]
image() {
	local name=$1 ctx=$2 file=${3:-$2/Containerfile}
	shift 3 || shift $#
	local args=()
	for a in "$@"; do args+=(--build-arg "$a"); done
	local b=(buildah --root "$DIR/buildah/root" --runroot "$DIR/buildah/run" --storage-driver vfs)
	"${b[@]}" bud --quiet --layers=false -f "$file" -t "$name" "${args[@]}" "$ctx" >/dev/null
	local tar="$DIR/build/$(echo "$name" | tr '/:' '__').tar"
	mkdir -p "$DIR/build"
	rm -f "$tar"
	"${b[@]}" push --quiet "$name" "docker-archive:$tar:$name"
	ctr_ images import "$tar" >/dev/null
	log "image $name imported"
}

up() {
	deps
	BIN="$("$ROOT/scripts/k8s-bins.sh")"
	if [ -f "$DIR/run/kubelet.pid" ] && kill -0 "$(cat "$DIR/run/kubelet.pid")" 2>/dev/null; then
		log "already up"
		echo "$DIR/admin.kubeconfig"
		return
	fi
	write_configs
	local t=$SECONDS
	start etcd etcd --name weft --data-dir "$DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls http://127.0.0.1:23792 --initial-advertise-peer-urls http://127.0.0.1:23792 \
		--initial-cluster weft=http://127.0.0.1:23792
	wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
	start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
		--cert-dir "$DIR/pki/apiserver" --token-auth-file "$DIR/pki/tokens.csv" \
		--authorization-mode Node,RBAC --allow-privileged=true \
		--service-account-issuer https://kubernetes.default.svc \
		--service-account-key-file "$DIR/pki/sa.pub" --service-account-signing-key-file "$DIR/pki/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
		--kubelet-preferred-address-types InternalIP,Hostname
	wait_for kube-apiserver 90 kubectl get --raw /readyz
	# The apiserver's self-made serving certificate is what pods must trust.
	start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$DIR/admin.kubeconfig" \
		--leader-elect=false --service-account-private-key-file "$DIR/pki/sa.key" \
		--root-ca-file "$DIR/pki/apiserver/apiserver.crt" --use-service-account-credentials=false \
		--bind-address 127.0.0.1
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$DIR/admin.kubeconfig" \
		--leader-elect=false --bind-address 127.0.0.1
	start containerd containerd --config "$DIR/containerd/config.toml"
	wait_for containerd 30 ctr_ version
	pause_image
	start kubelet "$BIN/kubelet" --config "$DIR/kubelet.yaml" --kubeconfig "$DIR/admin.kubeconfig" \
		--root-dir "$DIR/kubelet" --hostname-override "$NODE" --node-ip "$NODE_IP"
	wait_for "node $NODE" 120 kubectl wait --for=condition=Ready "node/$NODE" --timeout=1s
	wait_for "default service account" 60 kubectl -n default get serviceaccount default
	log "up in $((SECONDS - t)) s; kubectl --kubeconfig $DIR/admin.kubeconfig"
	echo "$DIR/admin.kubeconfig"
}

stop_pid() {
	local f="$DIR/run/$1.pid"
	[ -f "$f" ] || return 0
	local pid
	pid="$(cat "$f")"
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	BIN="$(K8S_BINS="kubectl" "$ROOT/scripts/k8s-bins.sh" 2>/dev/null || true)"
	if [ -S "$DIR/containerd/containerd.sock" ] && [ -f "$DIR/run/containerd.pid" ]; then
		stop_pid kubelet
		# Pods' processes and sandboxes die with their shims.
		for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$task" 2>/dev/null || true; done
		sleep 1
		for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true; done
	fi
	stop_pid kubelet
	local p
	for p in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io -address $DIR/" || true); do kill -9 "$p" 2>/dev/null || true; done
	for s in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_pid "$s"; done
	# What kubelet and CNI leave behind on the host: jumps to their chains,
	# then the chains (KUBE-FIREWALL drops outside traffic to 127/8).
	local tool table rule chain
	for tool in iptables ip6tables; do
		for table in filter nat mangle; do
			{ "$tool" -t "$table" -S 2>/dev/null || true; } | { grep -E '^-A .* -j (KUBE|CNI)-' || true; } |
				sed 's/^-A/-D/' | while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null || true; done
			for chain in $({ "$tool" -t "$table" -S 2>/dev/null || true; } | awk '/^-N (KUBE|CNI)-/{print $2}'); do
				"$tool" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $({ "$tool" -t "$table" -S 2>/dev/null || true; } | awk '/^-N (KUBE|CNI)-/{print $2}'); do
				"$tool" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
	ip link del "$BRIDGE" 2>/dev/null || true
	# Mounts under the state folder (pod volumes, netns, rootfs), deepest first.
	if [ -d "$DIR" ]; then
		{ grep -o " $DIR/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	fi
	for m in $(grep -o ' /run/netns/cni-[^ ]*' /proc/mounts || true); do umount -l "$m" 2>/dev/null || true; rm -f "$m"; done
	for c in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/*/k8s.io; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -rf "$DIR"
	log "down"
}

case "${1:-}" in
up) up ;;
down) down ;;
image)
	shift
	[ $# -ge 2 ] || { log "usage: cluster.sh image NAME CONTEXT [CONTAINERFILE] [BUILD-ARG...]"; exit 2; }
	image "$@"
	;;
*)
	log "usage: cluster.sh up|down|image"
	exit 2
	;;
esac
