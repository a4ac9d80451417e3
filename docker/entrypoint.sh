#!/bin/sh
# Container entrypoint: `convscope COMMAND ...`, with `serve` as the default command.
#
# Before serving, an empty models folder (a new Kubernetes volume, a fresh bind mount) is
# seeded with the bundled model, so the first replica is ready without a training run.
# The copy goes to a temporary name in the same folder and is renamed into place, so
# replicas starting together on one shared folder never see a half-written file (the
# last rename wins; every copy is the same bytes).
set -eu
[ $# -eq 0 ] && set -- serve
if [ "$1" = serve ]; then
  dir=${CONVSCOPE_MODELS:-/models}
  if [ ! -e "$dir/fmnist.csm" ] && [ -w "$dir" ]; then
    tmp="$dir/.fmnist.csm.seed.$$"
    cp /opt/convscope/models/fmnist.csm "$tmp" && mv -f "$tmp" "$dir/fmnist.csm" \
      && echo "convscope-entrypoint: seeded $dir/fmnist.csm with the bundled model" >&2 \
      || { rm -f "$tmp"; echo "convscope-entrypoint: could not seed $dir" >&2; }
  fi
fi
exec /usr/local/bin/convscope "$@"
