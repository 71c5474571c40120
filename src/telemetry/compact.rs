//! Labelled metric families whose series cost about a hundred bytes each.
//!
//! The `prometheus` crate's own vectors give every series a full copy of its
//! family's description (name, help text, label names) and its own copy of each
//! label value: about 700 bytes a series. calsync keeps some 47 series per
//! account (counters initialised at zero so the first event alerts), so at 1,000
//! accounts those copies were 35 MB of an idle daemon's memory. The families here
//! plug into the crate's own [`MetricVec`] (same registry, same text output,
//! same `with_label_values`/`remove_label_values`), but a series holds only its
//! value, the family's shared label names, and label values interned once per
//! process (an account's name is stored once, not once per series).

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::core::{Metric, MetricVec, MetricVecBuilder};
use prometheus::proto::{self, MetricType};
use prometheus::{Opts, Result};

/// A family of counters (`inc`, `get`).
pub type CounterFamily = MetricVec<Builder<CounterValue>>;
/// A family of integer gauges (`set`, `get`).
pub type GaugeFamily = MetricVec<Builder<GaugeValue>>;
/// A family of float gauges (`set`, `get`).
pub type FloatGaugeFamily = MetricVec<Builder<FloatGaugeValue>>;
/// A family of histograms (`observe`).
pub type HistogramFamily = MetricVec<Builder<HistogramValue>>;

/// Label values shared by every family of one [`Interner`]: each distinct value
/// is allocated once.
#[derive(Debug, Clone, Default)]
pub struct Interner(Arc<Mutex<HashSet<Arc<str>>>>);

impl Interner {
    fn intern(&self, value: &str) -> Arc<str> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = set.get(value) {
            return v.clone();
        }
        let v: Arc<str> = Arc::from(value);
        set.insert(v.clone());
        v
    }

    /// Drops values no series uses any more (an account a reload removed).
    pub fn prune(&self) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.retain(|v| Arc::strong_count(v) > 1);
    }
}

/// What a series stores besides its labels, and how it reads as a protobuf.
pub trait Value: Send + Sync + 'static {
    const TYPE: MetricType;
    fn new(buckets: &Arc<[f64]>) -> Self;
    fn fill(&self, metric: &mut proto::Metric);
}

/// One series: its labels and its value.
#[derive(Debug)]
pub struct Series<V> {
    names: Arc<[String]>,
    values: Box<[Arc<str>]>,
    value: V,
}

/// A handle on one series (what `with_label_values` returns).
#[derive(Debug)]
pub struct Handle<V>(Arc<Series<V>>);

impl<V> Clone for Handle<V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<V: Value> Metric for Handle<V> {
    fn metric(&self) -> proto::Metric {
        let mut labels: Vec<proto::LabelPair> = self
            .0
            .names
            .iter()
            .zip(self.0.values.iter())
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(name.clone());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        labels.sort_by(|a, b| a.name().cmp(b.name()));
        let mut metric = proto::Metric::from_label(labels);
        self.0.value.fill(&mut metric);
        metric
    }
}

/// Builds the series of one family.
#[derive(Debug)]
pub struct Builder<V> {
    names: Arc<[String]>,
    buckets: Arc<[f64]>,
    interner: Interner,
    value: std::marker::PhantomData<fn() -> V>,
}

impl<V> Clone for Builder<V> {
    fn clone(&self) -> Self {
        Self {
            names: self.names.clone(),
            buckets: self.buckets.clone(),
            interner: self.interner.clone(),
            value: std::marker::PhantomData,
        }
    }
}

impl<V: Value> MetricVecBuilder for Builder<V> {
    type M = Handle<V>;
    type P = Opts;

    fn build<L: AsRef<str>>(&self, _: &Opts, values: &[L]) -> Result<Handle<V>> {
        Ok(Handle(Arc::new(Series {
            names: self.names.clone(),
            values: values
                .iter()
                .map(|v| self.interner.intern(v.as_ref()))
                .collect(),
            value: V::new(&self.buckets),
        })))
    }
}

/// A new family named `name` with these label names (histogram `buckets`, upper
/// bounds in increasing order, ignored by other kinds).
pub fn family<V: Value>(
    interner: &Interner,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<MetricVec<Builder<V>>> {
    let names: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    let builder = Builder {
        names: names.clone().into(),
        buckets: buckets.into(),
        interner: interner.clone(),
        value: std::marker::PhantomData,
    };
    MetricVec::create(
        V::TYPE,
        builder,
        Opts::new(name, help).variable_labels(names),
    )
}

/// A counter's value.
#[derive(Debug)]
pub struct CounterValue(AtomicU64);

impl Value for CounterValue {
    const TYPE: MetricType = MetricType::COUNTER;
    fn new(_: &Arc<[f64]>) -> Self {
        Self(AtomicU64::new(0))
    }
    fn fill(&self, metric: &mut proto::Metric) {
        let mut counter = proto::Counter::default();
        counter.set_value(self.0.load(Ordering::Relaxed) as f64);
        metric.set_counter(counter);
    }
}

impl Handle<CounterValue> {
    pub fn inc(&self) {
        self.inc_by(1);
    }
    pub fn inc_by(&self, n: u64) {
        self.0.value.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.value.0.load(Ordering::Relaxed)
    }
}

/// An integer gauge's value.
#[derive(Debug)]
pub struct GaugeValue(AtomicI64);

impl Value for GaugeValue {
    const TYPE: MetricType = MetricType::GAUGE;
    fn new(_: &Arc<[f64]>) -> Self {
        Self(AtomicI64::new(0))
    }
    fn fill(&self, metric: &mut proto::Metric) {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(self.0.load(Ordering::Relaxed) as f64);
        metric.set_gauge(gauge);
    }
}

impl Handle<GaugeValue> {
    pub fn set(&self, v: i64) {
        self.0.value.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.value.0.load(Ordering::Relaxed)
    }
}

/// A float gauge's value (as bits).
#[derive(Debug)]
pub struct FloatGaugeValue(AtomicU64);

impl Value for FloatGaugeValue {
    const TYPE: MetricType = MetricType::GAUGE;
    fn new(_: &Arc<[f64]>) -> Self {
        Self(AtomicU64::new(0f64.to_bits()))
    }
    fn fill(&self, metric: &mut proto::Metric) {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(f64::from_bits(self.0.load(Ordering::Relaxed)));
        metric.set_gauge(gauge);
    }
}

impl Handle<FloatGaugeValue> {
    pub fn set(&self, v: f64) {
        self.0.value.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.value.0.load(Ordering::Relaxed))
    }
}

/// A histogram's observations: a count per bucket (not cumulative; `+Inf` last)
/// and the sum.
#[derive(Debug)]
pub struct HistogramValue {
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Value for HistogramValue {
    const TYPE: MetricType = MetricType::HISTOGRAM;
    fn new(buckets: &Arc<[f64]>) -> Self {
        Self {
            bounds: buckets.clone(),
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
    fn fill(&self, metric: &mut proto::Metric) {
        let mut histogram = proto::Histogram::default();
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            let mut bucket = proto::Bucket::default();
            bucket.set_cumulative_count(cumulative);
            bucket.set_upper_bound(*bound);
            buckets.push(bucket);
        }
        let total = cumulative + self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        histogram.set_bucket(buckets);
        histogram.set_sample_count(total);
        histogram.set_sample_sum(f64::from_bits(self.sum.load(Ordering::Relaxed)));
        metric.set_histogram(histogram);
    }
}

impl Handle<HistogramValue> {
    pub fn observe(&self, v: f64) {
        let h = &self.0.value;
        let slot = h
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(h.bounds.len());
        h.counts[slot].fetch_add(1, Ordering::Relaxed);
        let _ = h
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, IntCounterVec, Registry, TextEncoder};

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encodes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_counter_family_reads_exactly_like_the_crates_own() {
        let interner = Interner::default();
        let ours = Registry::new();
        let theirs = Registry::new();
        let compact: CounterFamily = family(
            &interner,
            "x_total",
            "Help.",
            &["account", "code", "b"],
            &[],
        )
        .expect("valid");
        let crate_vec =
            IntCounterVec::new(Opts::new("x_total", "Help."), &["account", "code", "b"])
                .expect("valid");
        ours.register(Box::new(compact.clone())).expect("registers");
        theirs
            .register(Box::new(crate_vec.clone()))
            .expect("registers");
        for (labels, n) in [(["a", "200", "z"], 3), (["b", "429", "y"], 1)] {
            for _ in 0..n {
                compact.with_label_values(&labels).inc();
                crate_vec.with_label_values(&labels).inc();
            }
        }
        compact.with_label_values(&["c", "500", "x"]);
        crate_vec.with_label_values(&["c", "500", "x"]);
        assert_eq!(text(&ours), text(&theirs));
        assert_eq!(compact.with_label_values(&["a", "200", "z"]).get(), 3);
        compact
            .remove_label_values(&["a", "200", "z"])
            .expect("exists");
        assert!(!text(&ours).contains("account=\"a\""));
    }

    #[test]
    fn a_histogram_family_reads_exactly_like_the_crates_own() {
        let interner = Interner::default();
        let ours = Registry::new();
        let theirs = Registry::new();
        let buckets = [0.1, 1.0, 10.0];
        let compact: HistogramFamily =
            family(&interner, "d_seconds", "Help.", &["account"], &buckets).expect("valid");
        let crate_vec = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("d_seconds", "Help.").buckets(buckets.to_vec()),
            &["account"],
        )
        .expect("valid");
        ours.register(Box::new(compact.clone())).expect("registers");
        theirs
            .register(Box::new(crate_vec.clone()))
            .expect("registers");
        for v in [0.05, 0.1, 0.5, 3.0, 10.0, 99.0] {
            compact.with_label_values(&["a"]).observe(v);
            crate_vec.with_label_values(&["a"]).observe(v);
        }
        assert_eq!(text(&ours), text(&theirs));
    }

    #[test]
    fn gauges_and_interned_values() {
        let interner = Interner::default();
        let g: GaugeFamily = family(&interner, "g", "Help.", &["account"], &[]).expect("valid");
        let f: FloatGaugeFamily =
            family(&interner, "f", "Help.", &["account"], &[]).expect("valid");
        g.with_label_values(&["acme"]).set(-4);
        f.with_label_values(&["acme"]).set(2.5);
        assert_eq!(g.with_label_values(&["acme"]).get(), -4);
        assert_eq!(f.with_label_values(&["acme"]).get(), 2.5);
        // One allocation of "acme" for both families.
        assert_eq!(interner.0.lock().expect("lock").len(), 1);
        g.remove_label_values(&["acme"]).expect("exists");
        f.remove_label_values(&["acme"]).expect("exists");
        interner.prune();
        assert!(interner.0.lock().expect("lock").is_empty());
    }
}
