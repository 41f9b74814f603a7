//! Conversions between record fields and SQLite columns.
//!
//! SQLite integers are `i64`; the records use the unsigned types the engine
//! works with. Every conversion is checked, so a corrupt or hand-edited row
//! is an error rather than a silently wrapped number.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;

/// Converts a column value to a record's unsigned field.
pub(crate) fn from_column<T: TryFrom<i64>>(
    value: i64,
    field: &'static str,
) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::OutOfRange {
        field,
        value: i128::from(value),
    })
}

/// Serialises a value into a JSON text column.
pub(crate) fn to_json<T: Serialize + ?Sized>(
    value: &T,
    field: &'static str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json { field, source })
}

/// Parses a JSON text column.
pub(crate) fn from_json<T: DeserializeOwned>(
    text: &str,
    field: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { field, source })
}
