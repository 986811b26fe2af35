#!/bin/sh
# Rebuilds README.md and PROTOCOL.md from their sections in docs/.
# Run after editing a section: sh docs/assemble.sh
set -eu
cd "$(dirname "$0")/.."
{
  for f in 00-core objects actors python python-runtime jobs backends fleet observe auth 99-reference; do
    cat "docs/readme/$f.md"; echo
  done
} > README.md
{
  for f in 00-overview objects tasks actors runtimes jobs backends backends-record auth python; do
    cat "docs/protocol/$f.md"; echo
  done
} > PROTOCOL.md
