#!/usr/bin/env bash
# Builds ringlb's two images from statically linked binaries, FROM scratch, without pulling:
#
#   ringlb-replica:latest  the replica web server alone (what `--runtime docker` starts)
#   ringlb:latest          ringlb plus the static docker CLI (the compose deployment)
#
# Usage: compose/build-images.sh [replica|ringlb|all]     (default: all)
#
# Environment:
#   DOCKER       the docker CLI                      (default: docker)
#   DOCKER_CLI   static docker CLI put in ringlb's image (default: `command -v docker`)
#   CARGO        cargo                               (default: cargo)
#
# The static build uses its own target directory (target/static) so that it never invalidates or
# waits behind the normal debug/release builds more than cargo's lock requires.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

what="${1:-all}"
case "$what" in
  replica | ringlb | all) ;;
  *) echo "usage: $0 [replica|ringlb|all]" >&2; exit 2 ;;
esac

DOCKER="${DOCKER:-docker}"
CARGO="${CARGO:-cargo}"
triple="x86_64-unknown-linux-gnu"
target_dir="$root/target/static"
bin_dir="$target_dir/$triple/release"
context="$root/target/image-context"

if ! "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "error: cannot reach the Docker engine through \`$DOCKER\`: is it running?" >&2
  exit 1
fi

# Static glibc binaries: a scratch image has no libc to link against at run time.
build_args=(build --release --target "$triple" --target-dir "$target_dir")
[[ "$what" != ringlb ]] && build_args+=(-p ringlb-replica --bin replica)
[[ "$what" != replica ]] && build_args+=(-p ringlb-proxy --bin ringlb)
echo "==> cargo ${build_args[*]}"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" "$CARGO" "${build_args[@]}"

# Copies a binary into a build context without its debug info (symbols stay, for backtraces).
stage() {
  local src="$1" dst="$2"
  if ! file -L "$src" 2>/dev/null | grep -Eq 'statically linked|static-pie'; then
    echo "error: $src is not statically linked; it would not run in a FROM scratch image" >&2
    exit 1
  fi
  cp -L "$src" "$dst"
  strip --strip-debug "$dst" 2>/dev/null || true
}

# One small context per image: only the files its Dockerfile copies are sent to the engine.
build_image() {
  local tag="$1" dockerfile="$2" dir="$3"
  echo "==> docker build $tag"
  # The classic builder: it needs no buildx plugin, and FROM scratch needs nothing it lacks.
  # Its deprecation notice is noise; any other output is shown when the build fails.
  local log
  if ! log="$(DOCKER_BUILDKIT=0 "$DOCKER" build --pull=false --quiet -t "$tag" \
    -f "$dockerfile" "$dir" 2>&1)"; then
    echo "$log" >&2
    echo "error: docker build $tag failed" >&2
    exit 1
  fi
}

if [[ "$what" != ringlb ]]; then
  rm -rf "$context/replica" && mkdir -p "$context/replica"
  stage "$bin_dir/replica" "$context/replica/replica"
  build_image ringlb-replica:latest compose/Dockerfile.replica "$context/replica"
fi

if [[ "$what" != replica ]]; then
  cli="${DOCKER_CLI:-$(command -v "$DOCKER" || true)}"
  if [[ -z "$cli" ]]; then
    echo "error: no docker CLI to put in the ringlb image; set DOCKER_CLI to a static one" >&2
    exit 1
  fi
  rm -rf "$context/ringlb" && mkdir -p "$context/ringlb"
  stage "$bin_dir/ringlb" "$context/ringlb/ringlb"
  stage "$cli" "$context/ringlb/docker"
  build_image ringlb:latest compose/Dockerfile.ringlb "$context/ringlb"
fi

echo "==> images"
"$DOCKER" image ls --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' \
  | grep -E '^(REPOSITORY|ringlb(-replica)?:latest)'
