# Shared by scripts/containers.sh, scripts/service-images.sh and tests/kubernetes/images/build.sh
# (sourced, not run): messages, the project's interpreter, the content digest of a build context,
# a build cached by that digest, wheels collected again only when their key changes, and clean
# copies of sources.
#
# The sourcing script sets, before it sources this file:
#   NAME        the prefix of its messages (containers, service-images)
#   HASH_LABEL  the image label that holds the digest an image was built from
#   repo        the checkout's root
#   work        the script's folder in the cache (its wheels are in $work/wheels)
#   logs        the folder of the build logs
# and, before it calls pip_, py: the interpreter whose pip collects the wheels.

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

# project_python [PATH]: the interpreter a script was given, else the project venv's, as an
# absolute path (a relative one is from the current folder; a bare name is looked up in PATH).
project_python() {
  local py="${1:-$repo/.venv/bin/python}"
  case "$py" in /*) ;; */*) py="$PWD/$py" ;; esac
  echo "$py"
}

pip_() { "$py" -m pip "$@"; }

# keyed_wheels NAME KEY COMMAND...: $work/wheels/NAME filled by COMMAND (run with the folder
# to fill as its last argument), again only when KEY changes; COMMAND's output is in the log.
keyed_wheels() {
  local name="$1" key="$2"; shift 2
  local dir="$work/wheels/$name" log="$logs/wheels-$name.log"
  if [ -d "$dir" ] && [ "$(cat "$dir.key" 2>/dev/null)" = "$key" ]; then
    return
  fi
  say "collecting the $name wheels (log: $log)"
  rm -rf "$dir.new" "$dir.key"
  mkdir -p "$dir.new"
  if ! "$@" "$dir.new" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "collecting the $name wheels failed (log: $log)"
  fi
  rm -rf "$dir"
  mv "$dir.new" "$dir"
  echo "$key" >"$dir.key"
}

# stage_sources DEST PATH...: a copy of those paths of the checkout, without caches and build
# output (no stale build/ of setuptools goes into a wheel).
stage_sources() {
  local dest="$1"; shift
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -C "$repo" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=node_modules \
      --exclude=build --exclude=dist -cf - "$@" | tar -C "$dest" -xf -
}

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
