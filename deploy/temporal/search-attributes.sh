#!/usr/bin/env bash
# Registers Garo's custom search attributes on a Temporal namespace. garo
# server does this itself at start when its credentials allow; run this as
# an operator when they do not.
#   deploy/temporal/search-attributes.sh [NAMESPACE]   (default: default)
# Uses the temporal CLI and its usual environment (TEMPORAL_ADDRESS, TLS...).
set -euo pipefail
ns="${1:-default}"
temporal="${TEMPORAL_CLI:-temporal}"
for spec in GaroAgent=Keyword GaroAgents=KeywordList GaroRepository=Keyword GaroRunnerState=Keyword GaroReaped=Int GaroPool=Keyword; do
  "$temporal" operator search-attribute create --namespace "$ns" --name "${spec%%=*}" --type "${spec#*=}"
done
