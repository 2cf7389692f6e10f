# Helpers that scripts/demo.sh sources, kept in a file of their own so that
# tests/integration/test_demo_helpers.py runs the very same functions against a stack.
# They need MH (the modelhub command, e.g. ".venv/bin/modelhub") and PY (a Python) set, and the
# stack's MODELHUB_URL and MODELHUB_TOKEN exported. A first run of the demo meets a deployment
# that does not exist yet: that is an answer (nothing printed, status 0), not an error.

# The deployment's status (running, deploying, ...), or nothing when there is no such deployment:
# `deployments show --json` then exits non-zero with its message on stderr and nothing on stdout.
deployment_status() {
  local shown
  shown="$($MH deployments show "$1" --json 2>/dev/null)" || return 0
  printf '%s' "$shown" | $PY -c '
import json, sys
try:
    doc = json.loads(sys.stdin.read())
except ValueError:
    doc = None
print(doc.get("status", "") if isinstance(doc, dict) else "")
'
}

# Wait while the deployment is changing state (at most $2 polls, 0.5 s apart; 240 by default):
# after a restart the deployer brings a running deployment back by itself. Returns at once when
# there is no such deployment.
wait_while_deployment_changes() {
  local polls="${2:-240}"
  for _ in $(seq 1 "$polls"); do
    case "$(deployment_status "$1")" in
      pending | deploying | stopping) sleep 0.5 ;;
      *) return 0 ;;
    esac
  done
}
