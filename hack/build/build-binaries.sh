#!/usr/bin/env bash
# Build the local control plane from source through the Go module proxy, once per version set.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet, kube-proxy (the real node)                                 (k8s.io/kubernetes)
#   etcd                                                                (go.etcd.io/etcd/server/v3)
#   kwok                                                                (sigs.k8s.io/kwok)
#   kstatus  (tests: the kstatus library Flux and kubectl wait use)     (sigs.k8s.io/cli-utils)
#   crds/monitoring/*.yaml (tests: prometheus-operator's CRDs, for server-side dry runs of the chart)
# Output: $MLMODEL_CACHE/bin/<versions>/ (default ~/.cache/mlmodel-operator); prints that folder last.
#
# `build-binaries.sh keda`: KEDA's operator and metrics API server (github.com/kedacore/keda/v2, built in a copy
# of its module so that its replace lines and go.sum apply) and its CRDs, in $MLMODEL_CACHE/bin/keda-<version>/;
# prints that folder last. Only the autoscaling parts of the local cluster ask for it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${MLMODEL_CACHE:-$HOME/.cache/mlmodel-operator}"
out="$cache/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
keda_out="$cache/bin/keda-$KEDA_VERSION"
log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }

build_keda() {
  local dir="$cache/build/keda-$KEDA_VERSION" src ld
  ld="-s -w -X=github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v}"
  mkdir -p "$keda_out"
  if [ ! -f "$dir/go.mod" ]; then
    log "KEDA $KEDA_VERSION: copying its module from the proxy"
    src=$(cd "$cache" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" \
          | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    rm -rf "$dir.tmp" && cp -r "$src" "$dir.tmp" && chmod -R u+w "$dir.tmp" && mv "$dir.tmp" "$dir"
  fi
  for b in operator adapter; do
    local name=keda; [ "$b" = adapter ] && name=keda-adapter
    [ -x "$keda_out/$name" ] && continue
    log "building $name $KEDA_VERSION (a cold build compiles every scaler: tens of minutes on 2 cores)"
    (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$keda_out/$name.tmp" "./cmd/$b") && mv "$keda_out/$name.tmp" "$keda_out/$name"
  done
  mkdir -p "$keda_out/crds"
  cp "$dir"/config/crd/bases/*.yaml "$keda_out/crds/"  # keda.sh and eventing.keda.sh: the operator watches both
}
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy etcd kwok kstatus pause)

if [ "${1:-}" = keda ]; then
  if [ -x "$keda_out/keda" ] && [ -x "$keda_out/keda-adapter" ] && [ -f "$keda_out/crds/keda.sh_scaledobjects.yaml" ] \
     && [ -f "$keda_out/crds/eventing.keda.sh_cloudeventsources.yaml" ]; then
    echo "$keda_out"; exit 0
  fi
  command -v go >/dev/null || { echo "error: Go (1.26+) is needed once to build KEDA" >&2; exit 1; }
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod GOSUMDB="${GOSUMDB:-off}"
  start=$(date +%s)
  build_keda
  log "KEDA done in $(( $(date +%s) - start ))s"
  echo "$keda_out"; exit 0
fi

missing=()
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
[ -f "$out/crds/monitoring/monitoring.coreos.com_prometheusrules.yaml" ] || missing+=("monitoring CRDs")
if [ ${#missing[@]} -eq 0 ]; then echo "$out"; exit 0; fi

command -v go >/dev/null || { echo "error: Go (1.26+) is needed once to build: ${missing[*]}" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
# sum.golang.org is not reachable from every build machine (it is not here); the module proxy is.
# Checksums then come from the proxy alone: set GOSUMDB yourself to have them verified.
export GOSUMDB="${GOSUMDB:-off}"
work="$cache/build"

build_k8s() {
  local dir="$work/k8s-$K8S_VERSION" minor staging
  mkdir -p "$dir"
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  staging="v0.${K8S_VERSION#v1.}"
  if [ ! -f "$dir/go.mod" ]; then
    log "k8s.io/kubernetes $K8S_VERSION: wrapper module with replace lines for its staging modules"
    proxy="$(go env GOPROXY)"; curl -fsS "${proxy%%,*}/k8s.io/kubernetes/@v/$K8S_VERSION.mod" -o "$dir/upstream.mod"
    {
      echo "module mlmodel.local/k8sbuild"; echo; echo "go 1.25.0"; echo
      echo "require k8s.io/kubernetes $K8S_VERSION"; echo
      grep -E '^\s*k8s\.io/[a-z0-9./-]+ v0\.0\.0\s*$' "$dir/upstream.mod" | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
    } > "$dir/go.mod.tmp" && mv "$dir/go.mod.tmp" "$dir/go.mod"
  fi
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    [ -x "$out/$b" ] && continue
    log "building $b $K8S_VERSION (a cold build takes several minutes per binary on 2 cores)"
    (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b") && mv "$out/$b.tmp" "$out/$b"
  done
}

build_etcd() {
  [ -x "$out/etcd" ] && return
  local dir="$work/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
  cat > "$dir/go.mod" <<MOD
module mlmodel.local/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > "$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true; cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" .) && mv "$out/etcd.tmp" "$out/etcd"
}

build_kwok() {
  [ -x "$out/kwok" ] && return
  log "building kwok $KWOK_VERSION"
  GOBIN="$out/.kwok" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$out/.kwok/kwok" "$out/kwok" && rmdir "$out/.kwok"
}

# kstatus: reads one Kubernetes object as JSON on stdin, prints {"status": ..., "message": ...} as kstatus
# computes it (Current, InProgress, Failed, ...): the rules Flux and `kubectl wait` style tools rely on.
build_kstatus() {
  [ -x "$out/kstatus" ] && return
  local dir="$work/kstatus-$CLI_UTILS_VERSION"
  mkdir -p "$dir"
  log "building kstatus (sigs.k8s.io/cli-utils $CLI_UTILS_VERSION)"
  cat > "$dir/go.mod" <<MOD
module mlmodel.local/kstatus

go 1.22

require sigs.k8s.io/cli-utils $CLI_UTILS_VERSION
MOD
  cat > "$dir/main.go" <<'GO'
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	// apimachinery's decoder gives int64 for integers, as the API machinery expects.
	var obj map[string]interface{}
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = kjson.Unmarshal(data, &obj)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading the object:", err)
		os.Exit(2)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{"status": res.Status.String(), "message": res.Message})
	fmt.Println(string(out))
}
GO
  (cd "$dir" && go mod tidy >/dev/null 2>&1; go build -trimpath -ldflags "-s -w" -o "$out/kstatus.tmp" .) && mv "$out/kstatus.tmp" "$out/kstatus"
}

# pause: the pod sandbox's process for the real node (containerd's default registry.k8s.io/pause cannot be
# pulled here): sleeps until SIGTERM/SIGINT and reaps children, like Kubernetes' own pause.c.
build_pause() {
  [ -x "$out/pause" ] && return
  local dir="$work/pause"
  mkdir -p "$dir"
  log "building pause"
  printf 'module mlmodel.local/pause\n\ngo 1.22\n' > "$dir/go.mod"
  cat > "$dir/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/pause.tmp" .) && mv "$out/pause.tmp" "$out/pause"
}

fetch_monitoring_crds() {
  local dest="$out/crds/monitoring" dir
  [ -f "$dest/monitoring.coreos.com_prometheusrules.yaml" ] && return
  log "fetching prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs (ServiceMonitor, PodMonitor, PrometheusRule)"
  dir=$(cd "$work" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$dest"
  for kind in servicemonitors podmonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dest/"
  done
}

start=$(date +%s)
build_etcd
build_kwok
build_k8s
build_kstatus
build_pause
fetch_monitoring_crds
log "done in $(( $(date +%s) - start ))s"
echo "$out"
