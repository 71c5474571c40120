//! Property tests of the two parsers that take outside input: one Cal.com record
//! (`calcom::wire::event_type_from_value`, and the typed `event_type_from_raw` a
//! listing uses, which must agree with it on every input) and the configuration file
//! (`Config::from_toml` + `validate`). Thousands of generated inputs each: none may
//! panic, a record is accepted only inside the documented ranges (title 1–255
//! characters, length 1–1440 minutes, price ≥ 0), and every configuration error
//! names the key or says what is wrong.

use std::sync::LazyLock;

use calsync::calcom::wire::{TypedListing, event_type_from_raw, event_type_from_value};
use calsync::config::{Config, ConfigError};
use calsync::domain::{EventTypeId, MAX_DESCRIPTION_CHARS, MAX_MINUTES, MAX_NAME_CHARS};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Number, Value, json};

// ------------------------------------------------------------------ records

/// Keys Cal.com sends (and calsync reads), so generated objects often carry them.
const EVENT_TYPE_KEYS: &[&str] = &[
    "id",
    "title",
    "slug",
    "description",
    "lengthInMinutes",
    "lengthInMinutesOptions",
    "hidden",
    "teamId",
    "price",
    "currency",
    "metadata",
    "apps",
    "stripe",
    "enabled",
    "ownerId",
    "users",
    "hosts",
];

/// Any characters (control characters, surrogate-adjacent planes, RTL marks…);
/// built from `char`s, which is much cheaper than a Unicode regex.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
}

fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any_text(12),
        2 => "[a-zA-Z ]{0,8}",
        1 => Just(String::new()),
        1 => Just("   ".to_owned()),
        1 => Just("💆 تدليك عميق".to_owned()),
        1 => Just("eur".to_owned()),
        1 => Just("usd".to_owned()),
        1 => Just("jpy".to_owned()),
        1 => (250usize..=260).prop_map(|n| "é".repeat(n)),
        1 => (9_995usize..=10_005).prop_map(|n| "d".repeat(n)),
    ]
}

fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-3i64..=3).prop_map(Value::from),
        3 => (-10i64..=1_500).prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (1_430i64..=1_450).prop_map(Value::from),
        1 => Just(Value::from(i64::MAX)),
        1 => Just(Value::from(i64::MIN)),
        1 => Just(Value::from(u64::MAX)),
        2 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => Just(json!(60.0)),
        1 => Just(json!(-0.0)),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => json_number(),
        3 => json_string().prop_map(Value::String),
    ]
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(EVENT_TYPE_KEYS).prop_map(str::to_owned),
        1 => any_text(6),
    ]
}

/// Arbitrary JSON trees, biased towards the keys a record has.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(json_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Small JSON trees, for values placed into a record's fields.
fn small_json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(json_key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A record Cal.com really sends, with every field calsync reads.
fn valid_event_type() -> Value {
    json!({
        "id": 81234, "ownerId": 4021, "title": "Deep-tissue massage", "slug": "deep-tissue-60",
        "description": "Sixty minute session", "lengthInMinutes": 60,
        "lengthInMinutesOptions": [30, 60], "hidden": false, "teamId": null,
        "price": 9000, "currency": "eur",
        "metadata": {"apps": {"stripe": {"enabled": true, "price": 9000, "currency": "eur"}}},
        "users": [{"id": 4021, "name": "Ana"}], "hosts": [{"userId": 1}]
    })
}

/// Where a mutation may land: each top-level field and the payment app's fields.
const MUTABLE_PATHS: &[&[&str]] = &[
    &["id"],
    &["title"],
    &["slug"],
    &["description"],
    &["lengthInMinutes"],
    &["lengthInMinutesOptions"],
    &["hidden"],
    &["teamId"],
    &["price"],
    &["currency"],
    &["metadata"],
    &["metadata", "apps"],
    &["metadata", "apps", "stripe"],
    &["metadata", "apps", "stripe", "enabled"],
    &["metadata", "apps", "stripe", "price"],
    &["metadata", "apps", "stripe", "currency"],
    &["users"],
    &["hosts"],
];

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = 0..MUTABLE_PATHS.len();
    prop_oneof![
        5 => (path.clone(), small_json_value()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        1 => path.prop_map(Mutation::Remove),
    ]
}

fn apply_mutation(record: &mut Value, m: &Mutation) {
    let (index, new) = match m {
        Mutation::Replace(i, v) => (*i, Some(v.clone())),
        Mutation::Remove(i) => (*i, None),
    };
    let path = MUTABLE_PATHS[index];
    let (last, parents) = path.split_last().expect("paths are never empty");
    let mut at = record;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            // An earlier mutation replaced the parent: nothing left to mutate.
            None => return,
        }
    }
    let Some(object) = at.as_object_mut() else {
        return;
    };
    match new {
        Some(v) => {
            object.insert((*last).to_owned(), v);
        }
        None => {
            object.remove(*last);
        }
    }
}

/// A listing holding `input` between two valid records: when the one-pass
/// reading takes it, every record reads as it does alone, record by record.
fn check_one_pass_listing(input: &Value) -> Result<(), TestCaseError> {
    let records = [valid_event_type(), input.clone(), valid_event_type()];
    let body = json!({ "status": "success", "data": records }).to_string();
    let Some(one_pass) = serde_json::from_str::<TypedListing<'_>>(&body)
        .ok()
        .and_then(TypedListing::records)
    else {
        return Ok(());
    };
    let by_record: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(pos, r)| {
            let raw = serde_json::value::RawValue::from_string(r.to_string())
                .expect("a Value re-encodes");
            event_type_from_raw(&raw, pos)
        })
        .collect();
    prop_assert_eq!(
        one_pass,
        by_record,
        "the one-pass listing disagrees with the record-by-record reading on {}",
        input
    );
    Ok(())
}

/// What an accepted record must satisfy, checked against the input it came from.
fn check_record(input: &Value) -> Result<(), TestCaseError> {
    let decoded = event_type_from_value(input, 3);
    let raw = serde_json::value::RawValue::from_string(input.to_string())
        .map_err(|e| TestCaseError::fail(format!("re-encoding the input: {e}")))?;
    prop_assert_eq!(
        &event_type_from_raw(&raw, 3),
        &decoded,
        "the typed decoder disagrees with the lenient one on {}",
        input
    );
    check_one_pass_listing(input)?;
    let object = input.as_object();
    let input_id = object
        .and_then(|o| o.get("id"))
        .and_then(Value::as_i64)
        .filter(|id| *id > 0);
    match decoded {
        Ok(et) => {
            let object = object.ok_or_else(|| TestCaseError::fail("accepted a non-object"))?;
            prop_assert_eq!(
                Some(et.id.0),
                input_id,
                "the id must be the input's positive id"
            );
            let title = object.get("title").and_then(Value::as_str);
            prop_assert_eq!(
                Some(et.title.as_str()),
                title,
                "the title is taken verbatim"
            );
            let chars = et.title.chars().count();
            prop_assert!(
                (1..=MAX_NAME_CHARS).contains(&chars),
                "accepted a title of {chars} characters"
            );
            prop_assert!(!et.title.trim().is_empty(), "accepted a blank title");
            let length = et.length.get();
            prop_assert!(
                (1..=MAX_MINUTES).contains(&length),
                "accepted lengthInMinutes {length}"
            );
            prop_assert_eq!(
                object.get("lengthInMinutes").and_then(Value::as_i64),
                Some(i64::from(length)),
                "the length is taken verbatim"
            );
            prop_assert!(
                et.price.cents >= 0,
                "accepted a negative price {:?}",
                et.price
            );
            prop_assert!(
                et.description.chars().count() <= MAX_DESCRIPTION_CHARS,
                "accepted a description of {} characters",
                et.description.chars().count()
            );
        }
        Err(e) => {
            prop_assert!(!e.message.trim().is_empty(), "an error without a message");
            match input_id {
                // With a readable id, the error names the event type.
                Some(id) => {
                    prop_assert_eq!(e.event_type_id, Some(EventTypeId(id)));
                    let shown = e.to_string();
                    prop_assert!(
                        shown.starts_with(&format!("event type {id}: ")),
                        "{shown:?} does not name event type {id}"
                    );
                }
                // Without one, the error says which item of the listing it was.
                None => {
                    prop_assert_eq!(e.event_type_id, None);
                    prop_assert!(
                        e.message.contains("#3"),
                        "{:?} lacks the position",
                        e.message
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_and_is_accepted_only_in_range(value in json_value()) {
        check_record(&value)?;
    }

    #[test]
    fn arbitrary_objects_with_record_keys_are_accepted_only_in_range(
        fields in proptest::collection::btree_map(
            proptest::sample::select(EVENT_TYPE_KEYS).prop_map(str::to_owned),
            small_json_value(),
            0..12,
        ),
        id in prop_oneof![Just(None), (-2i64..100_000).prop_map(Some)],
    ) {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        if let Some(id) = id {
            object.insert("id".into(), Value::from(id));
        }
        check_record(&Value::Object(object))?;
    }

    #[test]
    fn mutated_valid_records_never_panic_and_are_accepted_only_in_range(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut record = valid_event_type();
        for m in &mutations {
            apply_mutation(&mut record, m);
        }
        check_record(&record)?;
    }

    #[test]
    fn records_inside_the_ranges_are_accepted_exactly(
        id in 1i64..=i64::MAX,
        title in any_text(255)
            .prop_map(|t| t.chars().filter(|c| !c.is_control()).collect::<String>())
            .prop_filter("1 to 255 characters, not blank", |t| !t.trim().is_empty()),
        length in 1i64..=1_440,
        cents in 0i64..=99_999_999,
        currency in proptest::sample::select(&["eur", "usd", "gbp", "chf"][..]),
        hidden in any::<bool>(),
    ) {
        let record = json!({
            "id": id, "title": title, "lengthInMinutes": length, "hidden": hidden,
            "price": cents, "currency": currency,
        });
        let et = event_type_from_value(&record, 0)
            .map_err(|e| TestCaseError::fail(format!("a valid record was rejected: {e}")))?;
        prop_assert_eq!(et.id, EventTypeId(id));
        prop_assert_eq!(&et.title, &title);
        prop_assert_eq!(i64::from(et.length.get()), length);
        prop_assert_eq!(et.hidden, hidden);
        prop_assert_eq!(et.price.cents, cents);
    }
}

#[test]
fn control_characters_no_backend_can_store_are_rejected_naming_the_field() {
    for (key, value) in [
        ("title", "Cut\u{0000}"),
        ("title", "Cut\u{0007}"),
        ("description", "Long\u{0000}"),
        ("slug", "cut\u{0000}"),
    ] {
        let mut r = valid_event_type();
        r[key] = json!(value);
        let e = event_type_from_value(&r, 0).expect_err(key);
        assert!(
            e.message.starts_with(key) && e.message.contains("control character"),
            "{e}"
        );
        assert!(e.event_type_id.is_some(), "the error names the event type");
    }
    // Line breaks and tabs are fine in a description.
    let mut r = valid_event_type();
    r["description"] = json!("Line one\n\tLine two\r\n");
    assert!(event_type_from_value(&r, 0).is_ok());
}

#[test]
fn the_boundaries_of_each_range_are_exact() {
    let with = |key: &str, v: Value| {
        let mut r = valid_event_type();
        r[key] = v;
        r["metadata"] = json!({});
        event_type_from_value(&r, 0)
    };
    assert!(with("title", json!("x".repeat(255))).is_ok());
    assert!(with("title", json!("x".repeat(256))).is_err());
    assert!(
        with("title", json!("é".repeat(255))).is_ok(),
        "characters, not bytes"
    );
    assert!(with("title", json!("")).is_err());
    assert!(with("title", json!(" \t ")).is_err());
    assert!(with("lengthInMinutes", json!(1)).is_ok());
    assert!(with("lengthInMinutes", json!(1440)).is_ok());
    assert!(with("lengthInMinutes", json!(0)).is_err());
    assert!(with("lengthInMinutes", json!(1441)).is_err());
    assert!(with("lengthInMinutes", json!(60.5)).is_err());
    assert!(with("price", json!(0)).is_ok());
    assert!(with("price", json!(-1)).is_err());
}

// ------------------------------------------------------------------ config

const EXAMPLE: &str = include_str!("../../config/calsync.example.toml");

/// Every key the configuration has, as errors name them.
const CONFIG_KEYS: &[&str] = &[
    "database.url",
    "database.url_file",
    "database.max_connections",
    "calcom.base_url",
    "calcom.timeout_secs",
    "calcom.requests_per_minute",
    "calcom.max_attempts",
    "calcom.retry_initial_delay_ms",
    "calcom.max_body_bytes",
    "accounts",
    "sync.schedule",
    "sync.jitter_secs",
    "sync.max_concurrent_accounts",
    "sync.shutdown_timeout_secs",
    "sync.import_unknown",
    "sync.push_pending",
    "sync.repush_drifted",
    "sync.allow_calcom_overwrites",
    "sync.detect_platform_edits",
    "sync.orphan_checks_per_pass",
    "sync.touch_last_calcom_sync",
    "sync.max_push_attempts",
    "sync.push_backoff_initial_secs",
    "sync.push_backoff_max_secs",
    "sync.ownership",
    "sync.ownership.name",
    "sync.ownership.description",
    "sync.ownership.duration_minutes",
    "sync.ownership.visibility",
    "sync.ownership.price",
    "sync.guard",
    "sync.guard.max_orphan_percent",
    "sync.guard.max_overwrite_percent",
    "sync.guard.min_services",
    "server.listen",
    "server.admin_token",
    "server.admin_token_file",
    "server.viewer_token",
    "server.viewer_token_file",
    "console.language",
    "console.behind_https_proxy",
    "console.session_ttl_secs",
    "log.format",
    "log.level",
    "log.directory",
    "log.max_files",
];
const ACCOUNT_KEYS: &[&str] = &[
    "name",
    "company_id",
    "api_key",
    "api_key_file",
    "team_ids",
    "org_id",
    "ownership",
];

/// Whether `key` is one of the configuration's keys (`accounts[N].field` for
/// account fields).
fn is_config_key(key: &str) -> bool {
    if CONFIG_KEYS.contains(&key) {
        return true;
    }
    let Some(rest) = key.strip_prefix("accounts[") else {
        return false;
    };
    let Some((index, field)) = rest.split_once("].") else {
        return false;
    };
    index.parse::<usize>().is_ok() && ACCOUNT_KEYS.contains(&field)
}

/// Phrases with which a load error says what is wrong (figment and TOML wording).
const LOAD_PHRASES: &[&str] = &[
    "TOML parse error",
    "for key",
    "unknown field",
    "missing field",
    "invalid type",
    "invalid value",
    "invalid length",
    "expected",
];

fn check_config(text: &str) -> Result<(), TestCaseError> {
    let error = match Config::from_toml(text) {
        Ok(config) => match config.validate() {
            Ok(_) => return Ok(()),
            Err(e) => e,
        },
        Err(e) => e,
    };
    let shown = error.to_string();
    match &error {
        ConfigError::Invalid { key, message } => {
            prop_assert!(
                is_config_key(key),
                "error names {key:?}, which is not a configuration key: {shown}"
            );
            prop_assert!(
                message.trim().len() >= 5,
                "error for {key} does not say what is wrong: {shown}"
            );
            prop_assert!(shown.contains(key.as_str()), "{shown}");
        }
        ConfigError::Load(message) => {
            prop_assert!(
                LOAD_PHRASES.iter().any(|p| message.contains(p)),
                "a load error that neither names a key nor says what is wrong: {shown}"
            );
        }
    }
    Ok(())
}

/// The example file as a TOML table, parsed once.
static EXAMPLE_TABLE: LazyLock<toml::Table> =
    LazyLock::new(|| EXAMPLE.parse().expect("the example config is valid TOML"));

/// Every `(section, key)` of the example, plus the commented-out optional keys.
fn example_keys() -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for (section, value) in EXAMPLE_TABLE.iter() {
        let table = match value {
            toml::Value::Table(t) => t,
            toml::Value::Array(a) => match a.first() {
                Some(toml::Value::Table(t)) => t,
                _ => continue,
            },
            _ => continue,
        };
        for key in table.keys() {
            keys.push((section.clone(), key.clone()));
        }
    }
    for (section, key) in [
        ("database", "url_file"),
        ("accounts", "api_key_file"),
        ("accounts", "org_id"),
        ("server", "admin_token"),
        ("server", "admin_token_file"),
        ("server", "viewer_token"),
        ("server", "viewer_token_file"),
        ("log", "directory"),
    ] {
        keys.push((section.into(), key.into()));
    }
    keys
}

static KEYS: LazyLock<Vec<(String, String)>> = LazyLock::new(example_keys);

/// Values a mutation puts in: every TOML type, in and out of each key's range.
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        3 => (-5i64..=5).prop_map(toml::Value::Integer),
        2 => any::<i64>().prop_map(toml::Value::Integer),
        1 => (0i64..=5_000_000_000).prop_map(toml::Value::Integer),
        1 => any::<f64>().prop_map(toml::Value::Float),
        2 => any::<bool>().prop_map(toml::Value::Boolean),
        // No '/' in random strings: a *_file key must never name a device.
        3 => "[a-zA-Z0-9 _:.*@-]{0,20}".prop_map(toml::Value::String),
        1 => any_text(10).prop_map(|s| toml::Value::String(s.replace('/', ""))),
        1 => proptest::sample::select(&[
            "", "text", "json", "debug", "calsync=debug,sqlx=warn", "0 */5 * * * *",
            "*/5 * * * *", "0 0 0 31 2 *", "127.0.0.1:0", "[::1]:9464", "nowhere",
            "https://api.cal.com", "http://127.0.0.1:1", "ftp://x", "sqlite://x.db?mode=rwc",
            "postgres://u:p@127.0.0.1:1/db", "mysql://h/db", "oracle://x", "a-b_c",
            "admin-token-0123456789abcdef", "short", "cal_live_x", "does-not-exist.key",
        ][..]).prop_map(|s| toml::Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum ConfigMutation {
    /// Sets an existing (or optional) key to a value.
    Set(usize, toml::Value),
    Remove(usize),
    /// Adds a key the file does not know to a section (or the root).
    Unknown(Option<usize>, String, toml::Value),
    /// Replaces a whole section with a value of another shape.
    Section(usize, toml::Value),
    /// Adds another `[[accounts]]` entry, a copy of the first.
    DuplicateAccount,
}

fn config_mutation() -> impl Strategy<Value = ConfigMutation> {
    let key = 0..KEYS.len();
    prop_oneof![
        6 => (key.clone(), toml_value()).prop_map(|(k, v)| ConfigMutation::Set(k, v)),
        2 => key.clone().prop_map(ConfigMutation::Remove),
        1 => (proptest::option::of(key.clone()), "[a-z_]{1,12}", toml_value())
            .prop_map(|(k, name, v)| ConfigMutation::Unknown(k, name, v)),
        1 => (key, toml_value()).prop_map(|(k, v)| ConfigMutation::Section(k, v)),
        1 => Just(ConfigMutation::DuplicateAccount),
    ]
}

fn section_table<'a>(root: &'a mut toml::Table, section: &str) -> Option<&'a mut toml::Table> {
    match root.get_mut(section)? {
        toml::Value::Table(t) => Some(t),
        toml::Value::Array(a) => match a.first_mut()? {
            toml::Value::Table(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

fn mutate_config(root: &mut toml::Table, m: &ConfigMutation) {
    match m {
        ConfigMutation::Set(k, v) => {
            let (section, key) = &KEYS[*k];
            if let Some(t) = section_table(root, section) {
                t.insert(key.clone(), v.clone());
            }
        }
        ConfigMutation::Remove(k) => {
            let (section, key) = &KEYS[*k];
            if let Some(t) = section_table(root, section) {
                t.remove(key);
            }
        }
        ConfigMutation::Unknown(k, name, v) => match k {
            Some(k) => {
                if let Some(t) = section_table(root, &KEYS[*k].0) {
                    t.insert(name.clone(), v.clone());
                }
            }
            None => {
                root.insert(name.clone(), v.clone());
            }
        },
        ConfigMutation::Section(k, v) => {
            root.insert(KEYS[*k].0.clone(), v.clone());
        }
        ConfigMutation::DuplicateAccount => {
            if let Some(toml::Value::Array(accounts)) = root.get_mut("accounts")
                && let Some(first) = accounts.first().cloned()
            {
                accounts.push(first);
            }
        }
    }
}

/// Text-level damage: what a bad edit by hand does to the file.
#[derive(Debug, Clone)]
enum TextMutation {
    DeleteLine(usize),
    TruncateAt(usize),
    InsertAt(usize, String),
    SwapLines(usize, usize),
}

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        2 => any::<usize>().prop_map(TextMutation::DeleteLine),
        1 => any::<usize>().prop_map(TextMutation::TruncateAt),
        3 => (any::<usize>(), prop_oneof![
            "[\\[\\]=\"'#{},. a-z0-9\n]{1,6}",
            Just("\n[sync]\n".to_owned()),
            Just("\n[[accounts]]\n".to_owned()),
            Just(" = ".to_owned()),
            Just("\"".to_owned()),
        ]).prop_map(|(at, s)| TextMutation::InsertAt(at, s)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| TextMutation::SwapLines(a, b)),
    ]
}

fn mutate_text(text: &str, m: &TextMutation) -> String {
    let boundary = |at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match m {
        TextMutation::DeleteLine(n) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                lines.remove(n % lines.len());
            }
            lines.join("\n")
        }
        TextMutation::TruncateAt(at) => text[..boundary(*at)].to_owned(),
        TextMutation::InsertAt(at, s) => {
            let at = boundary(*at);
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        TextMutation::SwapLines(a, b) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
            lines.join("\n")
        }
    }
}

#[test]
fn the_example_config_is_valid_as_shipped() {
    Config::from_toml(EXAMPLE)
        .expect("the example parses")
        .validate()
        .expect("the example validates");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_and_errors_say_what_is_wrong(text in any_text(200)) {
        check_config(&text)?;
    }

    #[test]
    fn toml_shaped_text_never_panics_and_errors_say_what_is_wrong(
        text in "(\\[{1,2}[a-z_]{1,10}\\]{1,2}\n|[a-z_]{1,12} = (\"[^\"\n]{0,10}\"|[0-9-]{1,5}|true|\\[\\])\n){0,8}",
    ) {
        check_config(&text)?;
    }

    #[test]
    fn structural_mutations_of_the_example_never_panic_and_errors_name_the_key(
        mutations in proptest::collection::vec(config_mutation(), 1..4),
    ) {
        let mut root = EXAMPLE_TABLE.clone();
        for m in &mutations {
            mutate_config(&mut root, m);
        }
        // A shape TOML cannot write (e.g. a NaN key order quirk) is not a calsync input.
        let text = toml::to_string(&root);
        prop_assume!(text.is_ok());
        check_config(&text.unwrap_or_default())?;
    }

    #[test]
    fn textual_mutations_of_the_example_never_panic_and_errors_say_what_is_wrong(
        mutations in proptest::collection::vec(text_mutation(), 1..4),
    ) {
        let mut text = EXAMPLE.to_owned();
        for m in &mutations {
            text = mutate_text(&text, m);
        }
        check_config(&text)?;
    }
}
