//! Shaping an [`AccountWrite`] into batches: duplicates removed (a multi-row upsert
//! must not touch one row twice), rows sorted by key (concurrent transactions then
//! lock rows in the same order, which avoids most deadlocks), and chunks sized to
//! stay under bind-parameter and packet limits. Pure; no SQL here.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDateTime;

use super::{
    AccountWrite, AckWrite, BaselineWrite, Confirmation, DecisionRecord, DriftObservation,
    DriftResolution, GaveUp, MetadataUpdate, NewService, Overwrite, PushStateWrite, RegistryEntry,
    RunRecord,
};
use crate::domain::{BusinessValues, Field, Resolution, ServiceId};

/// Bind parameters per statement. SQLite allows 32766, PostgreSQL and MySQL 65535;
/// one limit below all three keeps the chunking identical everywhere.
pub(crate) const MAX_PARAMS: usize = 30_000;
/// Approximate bytes of bound text per statement, well under MySQL's default
/// `max_allowed_packet` (16 MiB on MariaDB, 64 MiB on MySQL 8).
pub(crate) const MAX_BYTES: usize = 4 << 20;
/// Ids per `IN (...)` list.
pub(crate) const ID_CHUNK: usize = 1_000;

/// Counts statements sent to the database; shared by clones of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Statements(Arc<AtomicU64>);

impl Statements {
    pub(crate) fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Column names of the business values (guard order) in a derived table.
pub(crate) const BUSINESS_COLUMNS: [&str; 7] = [
    "name",
    "description",
    "duration",
    "cents",
    "currency",
    "is_active",
    "is_online",
];

/// Approximate bound bytes of a row of business values.
pub(crate) fn business_bytes(v: &BusinessValues) -> usize {
    64 + v.name.len() + v.description.as_ref().map_or(0, String::len)
}

/// The ledger's uniqueness key of an open entry.
pub(crate) fn open_key(service: ServiceId, field: Field) -> String {
    format!("{}:{}", service.0, field.as_str())
}

/// An [`AccountWrite`] deduplicated and sorted, ready to be bound.
#[derive(Debug)]
pub(crate) struct PreparedWrite<'a> {
    pub account: &'a str,
    pub now: NaiveDateTime,
    pub imports: Vec<&'a NewService>,
    pub metadata: Vec<&'a MetadataUpdate>,
    pub confirmations: Vec<&'a Confirmation>,
    pub gave_up: Vec<&'a GaveUp>,
    pub overwrites: Vec<&'a Overwrite>,
    pub all_overwrites_or_nothing: bool,
    /// With their open keys (`None`: recorded closed).
    pub drift_upserts: Vec<(Option<String>, &'a DriftObservation)>,
    /// Open keys to close before the upserts, grouped by resolution.
    pub drift_replaced: Vec<(Resolution, Vec<String>)>,
    /// Open keys to close, grouped by resolution (one statement per group).
    pub drift_resolutions: Vec<(Resolution, Vec<String>)>,
    /// Baselines of services that already exist, one per service, by id.
    pub baselines: Vec<(ServiceId, &'a BaselineWrite)>,
    /// Baselines of services this write imports (ids known once inserted).
    pub import_baselines: Vec<&'a BaselineWrite>,
    pub registry: Vec<&'a RegistryEntry>,
    pub gone: Vec<i64>,
    pub push_states: Vec<&'a PushStateWrite>,
    /// Services whose push state ends (not also in `push_states`).
    pub push_states_cleared: Vec<i64>,
    /// With their open keys.
    pub acknowledgements: Vec<(String, &'a AckWrite)>,
    pub decisions: &'a [DecisionRecord],
    pub approval_used: Option<i64>,
    pub run: Option<&'a RunRecord>,
}

impl<'a> PreparedWrite<'a> {
    /// Nothing to write but the run journal line (with the account's
    /// verification time): a steady pass.
    pub(crate) fn journal_only(&self) -> bool {
        // Every field named: a new kind of write must say here whether it is
        // one, or a steady pass would skip it.
        let Self {
            account: _,
            now: _,
            imports,
            metadata,
            confirmations,
            gave_up,
            overwrites,
            all_overwrites_or_nothing: _,
            drift_upserts,
            drift_replaced,
            drift_resolutions,
            baselines,
            import_baselines,
            registry,
            gone,
            push_states,
            push_states_cleared,
            acknowledgements,
            decisions,
            approval_used,
            run: _,
        } = self;
        imports.is_empty()
            && metadata.is_empty()
            && confirmations.is_empty()
            && gave_up.is_empty()
            && overwrites.is_empty()
            && drift_upserts.is_empty()
            && drift_replaced.is_empty()
            && drift_resolutions.is_empty()
            && baselines.is_empty()
            && import_baselines.is_empty()
            && registry.is_empty()
            && gone.is_empty()
            && push_states.is_empty()
            && push_states_cleared.is_empty()
            && acknowledgements.is_empty()
            && decisions.is_empty()
            && approval_used.is_none()
    }

    pub(crate) fn new(write: &'a AccountWrite) -> Self {
        // Imports: the first request for an event type wins.
        let mut imports = first_by_key(&write.imports, |n| n.event_type_id.0);
        imports.sort_by_key(|n| n.event_type_id);
        // Updates: the last instruction for a row wins, as if applied in order.
        let mut metadata = last_by_key(&write.metadata, |m| m.id.0);
        metadata.sort_by_key(|m| m.id);
        let mut confirmations = last_by_key(&write.confirmations, |c| c.id.0);
        confirmations.sort_by_key(|c| c.id);
        let mut gave_up = last_by_key(&write.gave_up, |g| g.id.0);
        gave_up.sort_by_key(|g| g.id);
        let mut overwrites = last_by_key(&write.overwrites, |r| r.id().0);
        overwrites.sort_by_key(|o| o.id());
        let mut push_states = last_by_key(&write.push_states, |p| p.service_id.0);
        push_states.sort_by_key(|p| p.service_id);
        let kept: HashSet<i64> = push_states.iter().map(|p| p.service_id.0).collect();
        let mut push_states_cleared: Vec<i64> = write
            .push_states_cleared
            .iter()
            .map(|id| id.0)
            .filter(|id| !kept.contains(id))
            .collect();
        push_states_cleared.sort_unstable();
        push_states_cleared.dedup();
        let mut acknowledgements: Vec<(String, &AckWrite)> =
            last_by_key(&write.acknowledgements, |a| open_key(a.service_id, a.field))
                .into_iter()
                .map(|a| (open_key(a.service_id, a.field), a))
                .collect();
        acknowledgements.sort_by(|a, b| a.0.cmp(&b.0));
        // Open entries: the last observation of a key wins. Closed records have no
        // key and are all kept.
        let open: Vec<&DriftObservation> = write
            .drift_upserts
            .iter()
            .filter(|d| d.closed.is_none())
            .collect();
        let mut drift_upserts: Vec<(Option<String>, &DriftObservation)> =
            last_by_key(&open, |d| open_key(d.service_id, d.field))
                .into_iter()
                .map(|d| (Some(open_key(d.service_id, d.field)), *d))
                .collect();
        drift_upserts.sort_by(|a, b| a.0.cmp(&b.0));
        drift_upserts.extend(
            write
                .drift_upserts
                .iter()
                .filter(|d| d.closed.is_some())
                .map(|d| (None, d)),
        );
        let drift_replaced = grouped(&write.drift_replaced);
        let drift_resolutions = grouped(&write.drift_resolutions);
        let mut baselines: Vec<(ServiceId, &BaselineWrite)> =
            last_by_key(&write.baselines, |b| b.service_id)
                .into_iter()
                .filter_map(|b| b.service_id.map(|id| (id, b)))
                .collect();
        baselines.sort_by_key(|(id, _)| *id);
        let mut import_baselines: Vec<&BaselineWrite> = last_by_key(&write.baselines, |b| {
            b.service_id.map_or(Some(b.event_type_id), |_| None)
        })
        .into_iter()
        .filter(|b| b.service_id.is_none())
        .collect();
        import_baselines.sort_by_key(|b| b.event_type_id);
        let mut registry = last_by_key(&write.registry, |r| r.event_type_id.0);
        registry.sort_by_key(|r| r.event_type_id);
        Self {
            account: &write.account,
            now: write.now,
            imports,
            metadata,
            confirmations,
            gave_up,
            overwrites,
            all_overwrites_or_nothing: write.all_overwrites_or_nothing,
            drift_upserts,
            drift_replaced,
            drift_resolutions,
            baselines,
            import_baselines,
            registry,
            gone: {
                let mut gone: Vec<i64> = write.gone.iter().map(|id| id.0).collect();
                gone.sort_unstable();
                gone.dedup();
                gone
            },
            push_states,
            push_states_cleared,
            acknowledgements,
            decisions: &write.decisions,
            approval_used: write.approval_used,
            run: write.run.as_ref(),
        }
    }
}

/// Open keys grouped by resolution (one statement per group); the first
/// instruction for a key wins.
fn grouped(resolutions: &[DriftResolution]) -> Vec<(Resolution, Vec<String>)> {
    let mut out: Vec<(Resolution, Vec<String>)> = Vec::new();
    let mut seen = HashSet::new();
    for r in resolutions {
        let key = open_key(r.service_id, r.field);
        if !seen.insert(key.clone()) {
            continue;
        }
        match out.iter_mut().find(|(res, _)| *res == r.resolution) {
            Some((_, keys)) => keys.push(key),
            None => out.push((r.resolution, vec![key])),
        }
    }
    for (_, keys) in &mut out {
        keys.sort();
    }
    out
}

/// The baselines to write once imports have ids: those already known plus the
/// imported ones this call inserted.
pub(crate) fn baseline_rows<'a>(
    w: &PreparedWrite<'a>,
    imported: &[(crate::domain::EventTypeId, ServiceId)],
) -> Vec<(ServiceId, crate::domain::EventTypeId, String)> {
    let ids: std::collections::HashMap<_, _> = imported.iter().copied().collect();
    let mut rows: Vec<(ServiceId, crate::domain::EventTypeId, String)> = w
        .baselines
        .iter()
        .map(|(id, b)| (*id, b.event_type_id, b.baseline.to_json()))
        .collect();
    let known: HashSet<ServiceId> = rows.iter().map(|r| r.0).collect();
    for b in &w.import_baselines {
        if let Some(id) = ids.get(&b.event_type_id)
            && !known.contains(id)
        {
            rows.push((*id, b.event_type_id, b.baseline.to_json()));
        }
    }
    rows.sort_by_key(|r| r.0);
    rows
}

fn first_by_key<T, K: std::hash::Hash + Eq>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = HashSet::new();
    rows.iter().filter(|r| seen.insert(key(r))).collect()
}

fn last_by_key<T, K: std::hash::Hash + Eq>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = HashSet::new();
    let mut out: Vec<&T> = rows.iter().rev().filter(|r| seen.insert(key(r))).collect();
    out.reverse();
    out
}

/// Splits `rows` into consecutive chunks of at most [`MAX_PARAMS`] bind parameters
/// and about [`MAX_BYTES`] of bound text (a single oversized row gets its own chunk).
pub(crate) fn chunks<T>(
    rows: &[T],
    params_per_row: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let per_chunk = (MAX_PARAMS / params_per_row.max(1)).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, row) in rows.iter().enumerate() {
        let row_bytes = bytes(row);
        if i > start && (i - start >= per_chunk || size + row_bytes > MAX_BYTES) {
            out.push(&rows[start..i]);
            start = i;
            size = 0;
        }
        size += row_bytes;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_parameter_and_byte_limits() {
        let rows: Vec<usize> = vec![1; 7_000];
        let parts = chunks(&rows, 10, |_| 1);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [3_000, 3_000, 1_000]
        );
        let big: Vec<usize> = vec![3 << 20; 3];
        assert_eq!(chunks(&big, 1, |b| *b).len(), 3);
        assert!(chunks::<usize>(&[], 3, |_| 0).is_empty());
    }

    #[test]
    fn duplicates_keep_the_intended_instruction() {
        let rows = [(1, 'a'), (2, 'b'), (1, 'c')];
        assert_eq!(first_by_key(&rows, |r| r.0), [&(1, 'a'), &(2, 'b')]);
        assert_eq!(last_by_key(&rows, |r| r.0), [&(2, 'b'), &(1, 'c')]);
    }
}
