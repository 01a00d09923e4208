//! Exactly-once effects on one key-value record, guarded by message ids.
//!
//! A record is text: the first line holds its numbers (`<n1> <n2> …`), then one line per message id already
//! applied. `apply_once` reads the record through a compare-and-swap handle; if the record lists the message id
//! it does nothing, else it adds the deltas and the id and swaps. Check and effect are one swap, so a message
//! redelivered, or handled twice at once, counts once. On a conflict it retries with the fresh handle, up to
//! `TRIES` times, then fails (the caller returns an error and the message is redelivered later).
//!
//! The ids are kept forever: a record grows by one line per message. Fine for an example; a real ledger would
//! prune ids older than the longest possible redelivery.
//!
//! This file knows nothing about the WIT bindings (they are generated per crate): each crate implements [`Cas`]
//! for its `wasi:keyvalue/atomics` handle. It is shared by `orders-ledger` and the test actor `workflow-probe`.

/// Swaps tried before giving up on a contended key.
pub const TRIES: u32 = 100;

/// A compare-and-swap handle on one key.
pub trait Cas: Sized {
    /// The value the handle saw, `None` if the key was absent.
    fn value(&self) -> Result<Option<Vec<u8>>, String>;
    /// Writes `value` if the key is unchanged: `Ok(None)`; on a conflict `Ok(Some(fresh handle))`.
    fn swap(self, value: &[u8]) -> Result<Option<Self>, String>;
}

/// Read-modify-write of one key: `change` maps the current value to the new one, or to `None` to leave the key
/// as it is. Retries on conflict. Returns whether it wrote.
pub fn update<C: Cas>(
    mut cas: C,
    mut change: impl FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, String>,
) -> Result<bool, String> {
    for _ in 0..TRIES {
        let Some(new) = change(cas.value()?.as_deref())? else { return Ok(false) };
        match cas.swap(&new)? {
            None => return Ok(true),
            Some(fresh) => cas = fresh,
        }
    }
    Err(format!("the key is still contended after {TRIES} tries"))
}

/// Adds `deltas` to the record's numbers unless the record already lists `id`. Returns whether it applied them
/// (`false`: a duplicate).
pub fn apply_once<C: Cas>(cas: C, id: &str, deltas: &[i64]) -> Result<bool, String> {
    if id.is_empty() || id.contains(char::is_whitespace) {
        return Err(format!("message id `{id}` is empty or has whitespace"));
    }
    update(cas, |value| {
        let mut record = Record::parse(value)?;
        if record.ids.iter().any(|seen| seen == id) {
            return Ok(None);
        }
        record.numbers.resize(record.numbers.len().max(deltas.len()), 0);
        for (number, delta) in record.numbers.iter_mut().zip(deltas) {
            *number += delta;
        }
        record.ids.push(id.to_owned());
        Ok(Some(record.to_bytes()))
    })
}

/// A parsed record.
#[derive(Debug, Default)]
pub struct Record {
    /// The numbers of the first line.
    pub numbers: Vec<i64>,
    /// The message ids applied, oldest first.
    pub ids: Vec<String>,
}

impl Record {
    /// Parses a record; an absent key is an empty record. A plain counter (`5`) is a record without ids.
    pub fn parse(value: Option<&[u8]>) -> Result<Record, String> {
        let Some(value) = value else { return Ok(Record::default()) };
        let text = std::str::from_utf8(value).map_err(|_| "record is not utf-8 text".to_string())?;
        let mut lines = text.lines();
        let numbers = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse().map_err(|_| format!("record has a bad number `{n}`")))
            .collect::<Result<_, _>>()?;
        Ok(Record { numbers, ids: lines.map(str::to_owned).collect() })
    }

    /// The `i`th number, 0 when the record has fewer.
    pub fn number(&self, i: usize) -> i64 {
        self.numbers.get(i).copied().unwrap_or(0)
    }

    /// The record as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let numbers: Vec<String> = self.numbers.iter().map(i64::to_string).collect();
        let mut text = numbers.join(" ");
        for id in &self.ids {
            text.push('\n');
            text.push_str(id);
        }
        text.into_bytes()
    }
}
