#!/usr/bin/env bash
# Make a pinned Nextflow available in .tools/bin/nextflow when none is on the PATH.
# Route: resolve io.nextflow:nextflow from Maven Central with Maven (the official
# self-installer's host is often unreachable from HPC nodes and CI machines) and
# launch nextflow.cli.Launcher from that classpath. The jars are cached outside the
# checkout (PYSIM_CACHE, default ~/.cache/pysim) so fresh clones set up in seconds.
set -euo pipefail

NXF_VER="${NXF_VER:-24.10.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
cache="${PYSIM_CACHE:-$HOME/.cache/pysim}/nextflow-$NXF_VER"
wrapper="$tools/bin/nextflow"

if [ -x "$wrapper" ] && [ -f "$cache/lib/.complete" ]; then
    exit 0
fi
if [ -z "${PYSIM_FORCE_NEXTFLOW_JARS:-}" ] && command -v nextflow >/dev/null 2>&1 \
        && [ "$(command -v nextflow)" != "$wrapper" ]; then
    echo "setup-nextflow: using nextflow on PATH: $(command -v nextflow)"
    exit 0
fi

need_pkgs=()
command -v java >/dev/null 2>&1 || need_pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_pkgs+=(maven)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
    else
        echo "setup-nextflow: missing ${need_pkgs[*]}; install Java 17 and Maven, or Nextflow itself (curl -s https://get.nextflow.io | bash)" >&2
        exit 2
    fi
fi

if [ ! -f "$cache/lib/.complete" ]; then
    echo "setup-nextflow: resolving io.nextflow:nextflow:$NXF_VER from Maven Central"
    mkdir -p "$cache"
    pom="$(mktemp -d)"
    cat > "$pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pysim</groupId>
  <artifactId>nextflow-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.nextflow</groupId>
      <artifactId>nextflow</artifactId>
      <version>$NXF_VER</version>
    </dependency>
  </dependencies>
</project>
POM
    rm -rf "$cache/lib.tmp"
    mvn -q -B -f "$pom/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$cache/lib.tmp"
    rm -rf "$pom" "$cache/lib"
    touch "$cache/lib.tmp/.complete"
    mv "$cache/lib.tmp" "$cache/lib"
fi

mkdir -p "$tools/bin" "$tools/nxf-home"
cat > "$wrapper.tmp" <<WRAP
#!/usr/bin/env bash
# Nextflow $NXF_VER launched from Maven Central jars (written by scripts/setup-nextflow.sh).
export NXF_HOME="\${NXF_HOME:-$tools/nxf-home}"
export NXF_VER=$NXF_VER
opens=""
for pkg in java.lang java.io java.nio java.net java.util java.util.concurrent.locks \\
        java.util.concurrent.atomic java.nio.file.spi sun.nio.ch sun.nio.fs \\
        sun.net.www.protocol.http sun.net.www.protocol.https sun.net.www.protocol.ftp \\
        sun.net.www.protocol.file jdk.internal.misc jdk.internal.vm java.util.regex; do
    opens="\$opens --add-opens=java.base/\$pkg=ALL-UNNAMED"
done
exec java \$opens \${NXF_JVM_OPTS:-} -cp '$cache/lib/*' nextflow.cli.Launcher "\$@"
WRAP
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
echo "setup-nextflow: $("$wrapper" -version 2>/dev/null | grep -m1 -o 'version [0-9.]*' || echo 'installed') -> $wrapper"
