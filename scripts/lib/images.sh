# Shared by scripts/containers.sh and scripts/service-images.sh (sourced, not run):
# messages, the content digest of a build context, and a build cached by that digest.
#
# The sourcing script sets, before it sources this file:
#   NAME        the prefix of its messages (containers, service-images)
#   HASH_LABEL  the image label that holds the digest an image was built from
#   logs        the folder of the build logs

say() { echo "$NAME: $*"; }
die() { echo "$NAME: ERROR: $*" >&2; exit 1; }

# The digest of a folder: every entry's type, mode and relative path, and every
# file's content, in a fixed order. What a build's label holds.
digest_dir() {
  local dir="$1"
  [ -d "$dir" ] || die "digest: $dir is not a folder"
  (
    cd "$dir"
    find . -mindepth 1 -printf '%y %m %P\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum --
  ) | sha256sum | cut -d' ' -f1
}

digest_text() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }

# build_image REF CONTEXT BASE-REF [NAME=VALUE...]: build unless REF's label already
# holds the digest of CONTEXT, of the base image it is built on and of the other build
# arguments (NAME=VALUE, each a --build-arg). The build's steps are shown as they
# start; its whole output is in the log.
build_image() {
  local ref="$1" ctx="$2" base="$3"; shift 3
  local base_id want current old_id log="$logs/build-${ref//[\/:]/_}.log" start=$SECONDS arg build_args=()
  for arg in "$@"; do build_args+=(--build-arg "$arg"); done
  base_id="$(docker image inspect -f '{{.Id}}' "$base")" || die "the base image $base is missing"
  want="sha256:$(digest_text "$(digest_dir "$ctx")" "$base_id" "$@")"
  current="$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$ref" 2>/dev/null || true)"
  if [ "$current" = "$want" ]; then
    say "$ref is up to date ($HASH_LABEL ${want:0:19}...)"
    return
  fi
  old_id="$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)"
  say "building $ref (content ${want:0:19}..., image has ${current:-none}; log: $log)"
  set +e
  docker build --force-rm --label "$HASH_LABEL=$want" --build-arg "BASE=$base" "${build_args[@]}" -t "$ref" "$ctx" 2>&1 \
    | tee "$log" | { grep --line-buffered -E '^(Step [0-9]+/[0-9]+ : [A-Z]+|#[0-9]+ \[)' | sed -u -E "s/^(.{1,120}).*\$/$NAME:   \\1/" || true; }
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" != 0 ]; then
    tail -n 30 "$log" >&2
    die "docker build of $ref failed (log: $log)"
  fi
  [ "$(docker image inspect -f "{{index .Config.Labels \"$HASH_LABEL\"}}" "$ref")" = "$want" ] \
    || die "$ref was built but does not carry $HASH_LABEL=$want"
  # The image it replaces (unless a container or a tag still uses it), and build stages
  # that are no longer the newest: disk does not grow with every rebuild.
  local new_id
  new_id="$(docker image inspect -f '{{.Id}}' "$ref")"
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  local stage stale
  stage="$(basename "${ref%%:*}")"   # flightbase/training-base:0.1.0 -> training-base
  stale="$(docker images -q --no-trunc --filter dangling=true --filter "label=ai.flightbase.build-stage=$stage" | tail -n +2)"
  [ -z "$stale" ] || docker rmi $stale >/dev/null 2>&1 || true
  say "built $ref in $((SECONDS - start))s"
}
