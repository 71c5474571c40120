//! Seeded event types: a believable salon or clinic catalogue per user (varied
//! titles and lengths, a few hidden, some paid through Stripe in euros, a few
//! with a stale price left after payment was switched off). Deterministic per
//! user id, so runs and benchmarks are repeatable.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::shape::slugify;

/// (title, usual length in minutes, description).
const SALON: &[(&str, i64, &str)] = &[
    ("Women's haircut", 45, "Wash, cut and finish."),
    ("Men's haircut", 30, "Classic cut with a hot towel."),
    ("Beard trim", 15, ""),
    ("Balayage", 120, "Hand-painted highlights, toner included."),
    ("Root colour", 90, "Regrowth colour and blow-dry."),
    ("Blow-dry", 30, ""),
    (
        "Keratin treatment",
        120,
        "Smoothing treatment; allow extra time for long hair.",
    ),
    ("Manicure", 45, "Shape, cuticle care and polish."),
    ("Gel pedicure", 60, ""),
    ("Eyebrow shaping", 15, "Wax and tidy."),
    ("Lash lift", 60, "Lift and tint, lasts six to eight weeks."),
    ("Deep-tissue massage", 60, "Sixty minute session."),
    ("Swedish massage", 90, ""),
    ("Hot stone massage", 75, "Warm basalt stones, full body."),
    ("Hydrating facial", 60, "Cleanse, exfoliate, mask."),
    ("Full leg wax", 45, ""),
    ("Bridal trial", 90, "Hair and make-up rehearsal."),
    ("Kids' haircut", 20, "Under twelves."),
    ("Scalp treatment", 30, ""),
    ("Express facial", 30, "A quick refresh."),
];

const CLINIC: &[(&str, i64, &str)] = &[
    (
        "Physiotherapy assessment",
        60,
        "First visit: history, examination and a plan.",
    ),
    ("Physiotherapy follow-up", 30, ""),
    ("Sports massage", 45, "For training load and recovery."),
    ("Osteopathy session", 45, ""),
    (
        "Nutrition consultation",
        60,
        "Bring a three-day food diary.",
    ),
    ("Dental check-up", 30, "Examination and advice."),
    ("Teeth whitening", 90, ""),
    (
        "Dermatology consultation",
        30,
        "Skin check with dermatoscope.",
    ),
    ("Acupuncture", 45, ""),
    ("Psychology session", 50, "Individual session."),
    ("Podiatry", 30, "Nail and skin care for feet."),
    ("Speech therapy", 45, ""),
    (
        "Initial consultation",
        20,
        "Short call to find the right treatment.",
    ),
    ("Video follow-up", 15, "Online check-in."),
    ("Chiropractic adjustment", 20, ""),
    ("Pilates rehab class", 55, "Small group, mats provided."),
    ("Hearing test", 40, ""),
    ("Eye examination", 30, "Includes retinal photos."),
    ("Vaccination appointment", 15, ""),
    ("Blood test", 15, "Fasting may be required."),
];

const VARIANTS: &[(&str, i64)] = &[
    ("", 0),
    (" – extended", 30),
    (" – short", -15),
    (" – senior therapist", 0),
    (" – home visit", 30),
    (" – weekend", 0),
];

const LISBON_STREETS: &[&str] = &[
    "Rua Augusta 112, Lisboa",
    "Avenida da Liberdade 180, Lisboa",
    "Rua de Santa Catarina 45, Porto",
    "Rua Garrett 20, Lisboa",
];

/// `count` event-type field sets for one user, with slugs unique among them.
pub(crate) fn catalogue(user_id: i64, count: usize) -> Vec<Vec<(&'static str, Value)>> {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 ^ user_id as u64);
    let clinic = rng.random_bool(0.5);
    let mut base: Vec<(&str, i64, &str)> = if clinic { CLINIC } else { SALON }.to_vec();
    base.shuffle(&mut rng);
    let address = LISBON_STREETS[rng.random_range(0..LISBON_STREETS.len())];

    let mut slugs = HashSet::new();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (title, usual, description) = base[i % base.len()];
        let (suffix, extra) = VARIANTS[(i / base.len()) % VARIANTS.len()];
        let round = i / (base.len() * VARIANTS.len());
        let title = if round == 0 {
            format!("{title}{suffix}")
        } else {
            format!("{title}{suffix} ({})", round + 1)
        };
        let length = (usual + extra).clamp(15, 120);

        let mut slug = format!("{}-{length}", slugify(&title));
        let mut n = 2;
        while !slugs.insert(slug.clone()) {
            slug = format!("{}-{length}-{n}", slugify(&title));
            n += 1;
        }

        let mut fields: Vec<(&'static str, Value)> = Vec::with_capacity(12);
        fields.push(("title", title.into()));
        fields.push(("slug", slug.into()));
        fields.push(("lengthInMinutes", length.into()));
        fields.push(("description", description.into()));
        fields.push(("hidden", rng.random_bool(0.1).into()));
        let location = if clinic && rng.random_bool(0.3) {
            json!({ "type": "integration", "integration": "cal-video" })
        } else {
            json!({ "type": "address", "address": address, "public": true })
        };
        fields.push(("locations", json!([location])));
        let notice = [0, 60, 120, 1440][rng.random_range(0..4)];
        fields.push(("minimumBookingNotice", notice.into()));
        let buffer = [0, 5, 10, 15][rng.random_range(0..4)];
        fields.push(("afterEventBuffer", buffer.into()));

        let roll: f64 = rng.random();
        if roll < 0.30 {
            // Paid: Stripe enabled, the deprecated columns mirror it (minor units).
            let price = 500 * rng.random_range(4..=30i64);
            fields.push(("price", price.into()));
            fields.push(("currency", "eur".into()));
            fields.push(("metadata", stripe(true, price)));
        } else if roll < 0.35 {
            // Payment switched off later: the columns still hold the old price.
            let price = 500 * rng.random_range(4..=20i64);
            fields.push(("price", price.into()));
            fields.push(("currency", "eur".into()));
            fields.push(("metadata", stripe(false, price)));
        }
        out.push(fields);
    }
    out
}

fn stripe(enabled: bool, price: i64) -> Value {
    json!({
        "apps": {
            "stripe": {
                "enabled": enabled,
                "price": price,
                "currency": "eur",
                "paymentOption": "ON_BOOKING",
            }
        }
    })
}
