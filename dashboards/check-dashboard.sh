#!/usr/bin/env bash
# Offline checks of dashboards/calsync.json (no Grafana needed): structure,
# template variables, data source and account filter on every query, metric
# names limited to what calsync exports (plus `up`), and PromQL syntax via
# `promtool check rules` on a throwaway rules file built from every expr.
#
# Usage: dashboards/check-dashboard.sh [dashboards/calsync.json]
set -euo pipefail

dash="${1:-$(dirname "$0")/calsync.json}"
fail() { echo "check-dashboard: $*" >&2; exit 1; }

jq empty "$dash" || fail "$dash is not valid JSON"

[[ "$(jq -r .uid "$dash")" == calsync ]] || fail 'uid must be "calsync"'
(( $(jq -r .schemaVersion "$dash") >= 36 )) || fail "schemaVersion too old"
jq -e '.templating.list[] | select(.name == "datasource" and .type == "datasource" and .query == "prometheus")' "$dash" >/dev/null \
  || fail 'missing datasource variable of type datasource (prometheus)'
jq -e '.templating.list[] | select(.name == "account" and .multi and .includeAll
        and .definition == "label_values(calsync_event_types, account)")' "$dash" >/dev/null \
  || fail 'missing multi-value account variable over label_values(calsync_event_types, account)'

dupes="$(jq -r '[.panels[].id] | group_by(.) | map(select(length > 1) | .[0]) | .[]' "$dash")"
[[ -z "$dupes" ]] || fail "duplicate panel ids: $dupes"

bad_ds="$(jq -r '.panels[] | select(.type != "row")
  | select(.datasource.uid != "${datasource}" or any(.targets[]; .datasource.uid != "${datasource}"))
  | .title' "$dash")"
[[ -z "$bad_ds" ]] || fail "panels not using \${datasource}: $bad_ds"

jq -e '.annotations.list[] | select(.datasource.uid == "${datasource}" and (.expr | test("calsync_protection_triggered_total")))' \
  "$dash" >/dev/null || fail "missing the PROTECTION annotation"

# Every expression: panel targets and annotations.
mapfile -t exprs < <(jq -r '(.panels[] | select(.type != "row") | .targets[].expr), (.annotations.list[] | .expr // empty)' "$dash")
(( ${#exprs[@]} > 0 )) || fail "no expressions found"

allowed=" calsync_protection_triggered_total calsync_calcom_overwrites_total calsync_drifted_services
  calsync_drift_fields calsync_drift_oldest_age_seconds calsync_imported_total calsync_pushed_total
  calsync_orphaned_services calsync_listing_inconsistencies_total calsync_event_types calsync_services calsync_reconcile_runs_total
  calsync_reconcile_duration_seconds_bucket calsync_reconcile_skipped_total
  calsync_last_success_timestamp_seconds calsync_calcom_requests_total
  calsync_calcom_request_duration_seconds_bucket calsync_calcom_rate_limit_remaining
  calsync_build_info calsync_leader calsync_ready calsync_config_last_reload_successful
  calsync_config_last_reload_success_timestamp_seconds calsync_unreadable_records_total
  calsync_push_needs_human calsync_push_backoff_services calsync_guard_tripped_total
  calsync_drift_acknowledged_fields up "
# Metrics without an account label (process-wide); all others must be filtered.
no_account=" calsync_reconcile_skipped_total
  calsync_calcom_request_duration_seconds_bucket calsync_build_info calsync_leader calsync_ready
  calsync_config_last_reload_successful calsync_config_last_reload_success_timestamp_seconds up "
allowed="$(tr -s '[:space:]' ' ' <<<"$allowed")"
no_account="$(tr -s '[:space:]' ' ' <<<"$no_account")"

rules="$(mktemp)"
trap 'rm -f "$rules"' EXIT
printf 'groups:\n  - name: dashboard-exprs\n    rules:\n' >"$rules"
i=0
for expr in "${exprs[@]}"; do
  for metric in $(grep -oE '\bcalsync_[a-z_]+|\bup\{' <<<"$expr" | tr -d '{' | sort -u); do
    [[ " $allowed " == *" $metric "* ]] || fail "unknown metric $metric in: $expr"
    if [[ " $no_account " != *" $metric "* && "$expr" != *"account=~\"\$account\""* ]]; then
      fail "$metric queried without account=~\"\$account\": $expr"
    fi
  done
  promql="${expr//\$__rate_interval/5m}"
  promql="${promql//\$__range/1d}"
  promql="${promql//\$account/.*}"
  i=$((i + 1))
  printf '      - record: dashboard:expr_%d\n        expr: %s\n' "$i" "$(jq -Rn --arg e "$promql" '$e')" >>"$rules"
done
promtool check rules "$rules" >/dev/null || { promtool check rules "$rules"; fail "PromQL errors above"; }
echo "check-dashboard: $dash OK ($i expressions)"
