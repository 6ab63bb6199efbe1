#!/usr/bin/env bash
# Render a Pulumi program at the pull request's base and head offline, and forecast the change.
#
# Called by action.yml (read that first); runnable by hand from the head checkout:
#   BASE_SHA=<sha> OUT=/tmp/review HEAD_MLEKS=.venv/bin/mleks bash .github/actions/review/review.sh
#
# Environment:
#   BASE_SHA     the commit to compare with (the PR's base)
#   OUT          a scratch folder: gets base-render/, head-render/ and diff.md
#   HEAD_MLEKS   the mleks command installed from the head's requirements
#   BASE_MLEKS   the same from the base's (default: HEAD_MLEKS); it renders the base
#   BASE_DIR     a checkout of BASE_SHA (default: a git worktree at $OUT/base)
#   PROGRAM_DIR  the program's folder in the repository (default: .)
#   STACKS       stacks to render, space-separated (default: every Pulumi.<stack>.yaml of the head)
#   RENDER_ARGS  more `mleks render` options, e.g. --existing-cluster-version 1.33
#   DIFF_ARGS    more `mleks diff` options, e.g. --spot-discount 0.6
#   FAIL_ON      replace | delete | unknown | change: exit 1 when the diff has it (after diff.md is written)
# Exit 0, 1 (the FAIL_ON gate; diff.md is written) or 2 (a render or the diff failed: no forecast).
# A stack the base lacks is shown as all new; no AWS account, credentials or Pulumi CLI are used.
# Bash 4 or newer (the ubuntu runners'): mapfile, and empty arrays under set -u.
set -euo pipefail

fail() { echo "mleks review: $*" >&2; exit 2; }

: "${BASE_SHA:?the base commit}" "${OUT:?a scratch folder}" "${HEAD_MLEKS:?the head mleks command}"
BASE_MLEKS=${BASE_MLEKS:-$HEAD_MLEKS}
if ! [ -x "$BASE_MLEKS" ] && ! command -v "$BASE_MLEKS" > /dev/null; then
  echo "the base has no mleks of its own: rendering it with the head's library"
  BASE_MLEKS=$HEAD_MLEKS
fi
PROGRAM_DIR=${PROGRAM_DIR:-.}
read -r -a render_args <<< "${RENDER_ARGS:-}"
read -r -a diff_args <<< "${DIFF_ARGS:-}"
mkdir -p "$OUT/base-render" "$OUT/head-render"

if [ -z "${BASE_DIR:-}" ]; then
  BASE_DIR="$OUT/base"
  [ -d "$BASE_DIR" ] || git worktree add --detach "$BASE_DIR" "$BASE_SHA" > /dev/null
fi

if [ -n "${STACKS:-}" ]; then
  read -r -a stacks <<< "$STACKS"
else
  listed=$("$HEAD_MLEKS" stacks "$PROGRAM_DIR") || fail "no Pulumi program in $PROGRAM_DIR at the head"
  mapfile -t stacks <<< "$listed"
  [ -n "$listed" ] || stacks=()
fi
[ "${#stacks[@]}" -gt 0 ] || { echo "no stack files in $PROGRAM_DIR: give STACKS or add a Pulumi.<stack>.yaml" >&2; exit 2; }

base_stacks=" "
if [ -f "$BASE_DIR/$PROGRAM_DIR/Pulumi.yaml" ]; then
  base_stacks=" $("$HEAD_MLEKS" stacks "$BASE_DIR/$PROGRAM_DIR" | tr '\n' ' ')"
fi

for stack in "${stacks[@]}"; do
  "$HEAD_MLEKS" render "$PROGRAM_DIR" --stack "$stack" --quiet --out "$OUT/head-render" "${render_args[@]}" || fail "stack $stack does not render at the head (see above)"
  if [[ "$base_stacks" == *" $stack "* ]]; then
    # The base's own code and library version render the base; an older library may lack an option
    # the head needs, so the head's library is the fallback (said in the log).
    if ! (cd "$BASE_DIR" && "$BASE_MLEKS" render "$PROGRAM_DIR" --stack "$stack" --quiet --out "$OUT/base-render" "${render_args[@]}"); then
      echo "stack $stack: the base's library could not render the base; rendering it with the head's"
      (cd "$BASE_DIR" && "$HEAD_MLEKS" render "$PROGRAM_DIR" --stack "$stack" --quiet --out "$OUT/base-render" "${render_args[@]}") || fail "stack $stack does not render at the base"
    fi
  else
    echo "stack $stack is new in this pull request: every resource is shown as created"
  fi
done
for stack in $base_stacks; do
  [[ " ${stacks[*]} " == *" $stack "* ]] || echo "stack $stack is in the base but not rendered at the head (removed, or not in STACKS): not in the forecast"
done

gate=()
[ -z "${FAIL_ON:-}" ] || gate=(--fail-on "$FAIL_ON")
status=0
"$HEAD_MLEKS" diff "$OUT/base-render" "$OUT/head-render" "${diff_args[@]}" "${gate[@]}" > "$OUT/diff.md" || status=$?
[ "$status" -le 1 ] || fail "mleks diff failed (exit $status): no forecast"
exit "$status"
