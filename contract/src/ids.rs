//! The platform's ids as types: each is parsed and checked once, where it enters (a request, a
//! token, a consumed message), and is known good everywhere after. They serialise as the plain
//! strings the contract has always used, so the JSON on the wire and in the tables is unchanged.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// The longest user id accepted (the saga contract's limit).
pub const MAX_USER_ID: usize = 64;

/// Whether `sub` can be a Sagaway user id: 1–64 characters of letters, digits and `_ - . @ :`
/// (usernames of the identity service, Keycloak's UUIDs, Auth0's `auth0|…` once `|` is mapped).
pub fn valid_user_id(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= MAX_USER_ID && sub.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | ':'))
}

/// Why a text is not an id of the named kind (`order_id must be a UUID, got 12 characters`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(String);

/// Checks `s` is a UUID in its canonical 36-character text form (hyphenated; either case).
fn check_uuid(kind: &str, s: &str) -> Result<(), InvalidId> {
    match uuid::Uuid::try_parse(s) {
        Ok(_) if s.len() == 36 => Ok(()),
        _ => Err(InvalidId(format!("{kind} must be a UUID, got {} characters", s.chars().count()))),
    }
}

/// The parts every string id shares: the checked text, read as a `str` wherever one is wanted
/// (tables store ids as text), compared with plain strings, and (de)serialised as a plain string
/// that is checked on the way in.
macro_rules! string_id {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// What `#[sqlx(try_from = "String")]` reads a column through: a table's id is checked too.
        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                s.parse().map_err(D::Error::custom)
            }
        }
    };
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A new id (UUIDv7: ids made later sort later, which keeps index inserts at the end).
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().hyphenated().to_string())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(u: uuid::Uuid) -> Self {
                Self(u.hyphenated().to_string())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                check_uuid($kind, s).map(|()| Self(s.to_string()))
            }
        }

        string_id!($name);
    };
}

uuid_id!(
    /// An order (`POST /payment`'s `order_id`): the saga's key in every command and reply.
    OrderId,
    "order_id"
);

uuid_id!(
    /// A stock reservation (`POST /reserve`'s `reservation_id`).
    ReservationId,
    "reservation_id"
);

/// A user: the `sub` of a verified token. 1–64 characters of letters, digits and `_ - . @ :`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl FromStr for UserId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        if valid_user_id(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidId(format!("user_id must be 1-{MAX_USER_ID} letters, digits or _-.@:, got {} characters", s.chars().count())))
        }
    }
}

string_id!(UserId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{OrderId, ReservationId, UserId};

    #[test]
    fn a_uuid_id_reads_only_the_canonical_text_form() {
        let id: OrderId = "0190f3c2-7d4e-7a10-9b2c-3d4e5f607182".parse().unwrap();
        assert_eq!(id.to_string(), "0190f3c2-7d4e-7a10-9b2c-3d4e5f607182");
        assert_eq!(id, "0190f3c2-7d4e-7a10-9b2c-3d4e5f607182");
        for bad in ["", "0190f3c27d4e7a109b2c3d4e5f607182", "{0190f3c2-7d4e-7a10-9b2c-3d4e5f607182}", "0190f3c2-7d4e-7a10-9b2c-3d4e5f60718", "x".repeat(36).as_str()] {
            assert!(bad.parse::<OrderId>().is_err(), "{bad:?}");
        }
        let err = "abc".parse::<ReservationId>().unwrap_err().to_string();
        assert_eq!(err, "reservation_id must be a UUID, got 3 characters");
    }

    #[test]
    fn ids_travel_as_plain_strings() {
        let id = OrderId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<OrderId>("\"not-a-uuid\"").unwrap_err().to_string().contains("order_id must be a UUID"));
        assert!(serde_json::from_str::<UserId>("\"alice smith\"").is_err(), "a space is not in a user id");
        assert_eq!(serde_json::from_str::<UserId>("\"auth0:alice@x\"").unwrap().as_str(), "auth0:alice@x");
    }

    #[test]
    fn new_ids_sort_in_the_order_they_were_made() {
        let a = OrderId::new();
        let b = OrderId::new();
        assert!(a < b && a.to_string() < b.to_string());
    }

    proptest! {
        #[test]
        fn a_user_id_is_accepted_exactly_when_the_rule_says_so(s in "\\PC{0,70}") {
            let rule = !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.@:".contains(c));
            prop_assert_eq!(s.parse::<UserId>().is_ok(), rule);
        }

        #[test]
        fn every_uuid_round_trips_through_its_text(bytes in any::<[u8; 16]>()) {
            let id = OrderId::from(uuid::Uuid::from_bytes(bytes));
            prop_assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
        }
    }
}
