#!/usr/bin/env bash
# The README's walk-through, run for you against a running tasklane (`make run` in another terminal):
# register, read the activation code from /dev/mail, activate, log in, tasks, an import of
# examples/tasks.csv with its errors and its live events, token refresh, logout, account deletion.
#
#   scripts/walkthrough.sh                     # against http://127.0.0.1:8000
#   BASE_URL=http://127.0.0.1:9000 scripts/walkthrough.sh
#
# Needs curl and python3 (standard library only). Exits non-zero at the first unexpected answer.
# /dev/mail exists only with APP_ENV=development and no SMTP_HOST, as `make run` starts it.
set -euo pipefail

BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
API="$BASE_URL/api/v1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FILE="${IMPORT_FILE:-$ROOT/examples/tasks.csv}"
EMAIL="${EMAIL:-walkthrough-$(date +%s)-$$@example.com}"
PASSWORD="${PASSWORD:-correct-horse-1}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# call EXPECTED_STATUS METHOD URL [curl arguments...]: the body lands in $WORK/body, the headers in $WORK/headers.
call() {
  local expected="$1" method="$2" url="$3"
  shift 3
  local status
  status="$(curl -sS -X "$method" "$url" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@")"
  printf '%s %s -> %s\n' "$method" "${url#"$BASE_URL"}" "$status"
  if [ "$status" != "$expected" ]; then
    printf 'expected %s from %s %s; the answer was:\n' "$expected" "$method" "${url#"$BASE_URL"}" >&2
    cat "$WORK/body" >&2
    echo >&2
    exit 1
  fi
}

# json EXPRESSION: evaluates a Python expression on the last body, parsed as `d`, and prints it.
json() {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$WORK/body" "$1"
}

header() {
  grep -i "^$1:" "$WORK/headers" | head -n 1 | cut -d' ' -f2- | tr -d '\r'
}

echo "== 1. Register $EMAIL"
call 201 POST "$API/users" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}"

echo "== 2. Read the activation code from the development inbox"
CODE=""
for _ in $(seq 100); do
  call 200 GET "$BASE_URL/dev/mail?to=$EMAIL" > /dev/null
  CODE="$(json 'next((m[1] for i in d["items"] if (m := __import__("re").search(r"activation code is (\d{4})", i["body"]))), "")')"
  [ -n "$CODE" ] && break
  sleep 0.3
done
[ -n "$CODE" ] || { echo "no activation email at $BASE_URL/dev/mail (is the worker running?)" >&2; exit 1; }
echo "code $CODE"

echo "== 3. Activate"
call 200 POST "$API/users/activate" -u "$EMAIL:$PASSWORD" -H 'Content-Type: application/json' \
  -d "{\"code\": \"$CODE\"}"

echo "== 4. Log in"
call 200 POST "$API/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$EMAIL\", \"password\": \"$PASSWORD\"}"
ACCESS="$(json 'd["access_token"]')"
REFRESH="$(json 'd["refresh_token"]')"
H="Authorization: Bearer $ACCESS"

echo "== 5. Who am I?"
call 200 GET "$API/users/me" -H "$H"
json 'd["email"], d["is_active"]'

echo "== 6. Tasks"
KEY="walkthrough-$$-$(date +%s)"
TASK='{"title": "Write report", "priority": 2, "due_date": "2030-12-01", "category": "Work"}'
call 201 POST "$API/tasks" -H "$H" -H 'Content-Type: application/json' -H "Idempotency-Key: $KEY" -d "$TASK"
TASK_ID="$(json 'd["id"]')"
call 201 POST "$API/tasks" -H "$H" -H 'Content-Type: application/json' -H "Idempotency-Key: $KEY" -d "$TASK"
[ "$(json 'd["id"]')" = "$TASK_ID" ] && [ "$(header Idempotent-Replayed)" = "true" ] \
  || { echo "the retried creation made a second task" >&2; exit 1; }
call 200 PATCH "$API/tasks/$TASK_ID" -H "$H" -H 'Content-Type: application/json' -d '{"status": "in_progress"}'
call 200 GET "$API/tasks?status=todo&status=in_progress&sort=due_date&limit=50" -H "$H"
call 200 GET "$API/categories" -H "$H"
json '[(c["name"], c["task_count"]) for c in d["items"]]'

echo "== 7. Import $(basename "$FILE")"
call 202 POST "$API/imports" -H "$H" -F "file=@$FILE"
JOB="$(json 'd["id"]')"
curl -sSN --max-time 120 "$API/imports/$JOB/events" -H "$H" > "$WORK/events"
grep -q '^event: end' "$WORK/events" || { echo "the event stream ended without an end event" >&2; exit 1; }
echo "GET /api/v1/imports/$JOB/events: $(grep -c '^event: progress' "$WORK/events") progress event(s), then end"
call 200 GET "$API/imports/$JOB" -H "$H"
[ "$(json 'd["status"]')" = completed ] || { echo "the import did not complete" >&2; json 'd'; exit 1; }
json '"rows imported: %d, failed: %d, warnings: %s" % (d["rows_imported"], d["rows_failed"], d["warnings"])'
call 200 GET "$API/imports/$JOB/errors?limit=50" -H "$H"
json '"\n".join("  row %d, %s: %s" % (e["row"], e["column"], e["message"]) for e in d["items"])'
call 200 GET "$API/imports/$JOB/errors.csv" -H "$H"
echo "errors.csv: $(($(wc -l < "$WORK/body") - 1)) rows to fix and upload again"
call 200 GET "$API/imports" -H "$H"

echo "== 8. Refresh the tokens (the old refresh token dies)"
call 200 POST "$API/auth/refresh" -H 'Content-Type: application/json' -d "{\"refresh_token\": \"$REFRESH\"}"
ACCESS="$(json 'd["access_token"]')"
REFRESH="$(json 'd["refresh_token"]')"
H="Authorization: Bearer $ACCESS"

echo "== 9. Log out (the access token stays valid until it expires), then delete the account"
call 204 POST "$API/auth/logout" -H 'Content-Type: application/json' -d "{\"refresh_token\": \"$REFRESH\"}"
call 401 POST "$API/auth/refresh" -H 'Content-Type: application/json' -d "{\"refresh_token\": \"$REFRESH\"}"
call 204 DELETE "$API/users/me" -H "$H"
call 401 GET "$API/users/me" -H "$H"

echo "Walk-through complete."
