//! A serde [`Deserializer`] around serde_cbor's that is exactly as strict as `fieldsync.cddl`.
//!
//! serde's derived visitors are generous: a struct reads from a CBOR array as well as a map, a
//! field name from a byte string or an integer (its index), a string from bytes, a float from an
//! integer, an absent optional field from `null`, a unit enum value from a one-entry map. The
//! contract allows none of that, and a vendor's encoder that relied on it would pass here and break
//! in the next implementation. [`Strict`] passes each request on to the inner deserializer with a
//! [`Guard`] visitor that lets through only the CBOR types the contract allows for what was asked,
//! and wraps every nested access (map, array, enum, option) so that nested values stay strict.
//! Nothing is copied or buffered: a refused type is an error at the point it is read.
//!
//! Values of unknown keys (`* tstr => any`) are skipped through `deserialize_ignored_any`, which
//! is left as generous as CBOR: an unknown field may hold anything.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Error as _, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// A deserializer that refuses what the contract forbids, around `D`.
pub(super) struct Strict<D>(pub D);

/// What the caller asked for, which decides the CBOR types a [`Guard`] lets through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Anything (serde's `deserialize_any`), nested values still guarded.
    Any,
    /// A struct or map: a CBOR map only.
    Map,
    /// A sequence: a CBOR array only.
    Seq,
    /// A string or a field name: a CBOR text string only.
    Text,
    /// A float: a CBOR float only (any width), never an integer.
    Float,
    /// An optional value that is present: never `null` or `undefined`.
    Present,
    /// A newtype struct.
    Newtype,
    /// An enum: a text string (unit variant) or a one-entry map (the others).
    Enum,
}

/// A visitor that passes to `inner` only the CBOR types `want` allows, and refuses the rest.
struct Guard<V> {
    inner: V,
    want: Want,
}

impl<V> Guard<V> {
    fn new(inner: V, want: Want) -> Self {
        Self { inner, want }
    }
}

/// Refuses a visit: the CBOR type is not one the contract allows here.
fn refuse<V: de::Expected, T, E: de::Error>(found: Unexpected, expected: &V) -> Result<T, E> {
    Err(E::invalid_type(found, expected))
}

/// One `visit_*` method for a scalar: passed on when `want` is `Any` or one of the listed wants,
/// refused otherwise.
macro_rules! scalar_visit {
    ($method:ident, $ty:ty, |$v:ident| $unexpected:expr $(, $allowed:ident)*) => {
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            if self.want == Want::Any $(|| self.want == Want::$allowed)* {
                self.inner.$method(value)
            } else {
                let $v = &value;
                refuse($unexpected, &self)
            }
        }
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Guard<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.want {
            Want::Map => f.write_str("a map")?,
            Want::Seq => f.write_str("an array")?,
            Want::Text => f.write_str("a text string")?,
            Want::Float => f.write_str("a float")?,
            Want::Present => f.write_str("a value (leave an absent optional field out)")?,
            Want::Any | Want::Newtype | Want::Enum => return self.inner.expecting(f),
        }
        f.write_str(" for ")?;
        self.inner.expecting(f)
    }

    scalar_visit!(visit_bool, bool, |v| Unexpected::Bool(*v));
    scalar_visit!(visit_i8, i8, |v| Unexpected::Signed(i64::from(*v)));
    scalar_visit!(visit_i16, i16, |v| Unexpected::Signed(i64::from(*v)));
    scalar_visit!(visit_i32, i32, |v| Unexpected::Signed(i64::from(*v)));
    scalar_visit!(visit_i64, i64, |v| Unexpected::Signed(*v));
    scalar_visit!(visit_i128, i128, |_v| Unexpected::Other("an integer"));
    scalar_visit!(visit_u8, u8, |v| Unexpected::Unsigned(u64::from(*v)));
    scalar_visit!(visit_u16, u16, |v| Unexpected::Unsigned(u64::from(*v)));
    scalar_visit!(visit_u32, u32, |v| Unexpected::Unsigned(u64::from(*v)));
    scalar_visit!(visit_u64, u64, |v| Unexpected::Unsigned(*v));
    scalar_visit!(visit_u128, u128, |_v| Unexpected::Other("an integer"));
    scalar_visit!(visit_f32, f32, |v| Unexpected::Float(f64::from(*v)), Float);
    scalar_visit!(visit_f64, f64, |v| Unexpected::Float(*v), Float);
    scalar_visit!(visit_char, char, |v| Unexpected::Char(*v), Text);
    scalar_visit!(visit_str, &str, |v| Unexpected::Str(v), Text);
    scalar_visit!(visit_borrowed_str, &'de str, |v| Unexpected::Str(v), Text);
    scalar_visit!(visit_string, String, |v| Unexpected::Str(v), Text);
    scalar_visit!(visit_bytes, &[u8], |v| Unexpected::Bytes(v));
    scalar_visit!(visit_borrowed_bytes, &'de [u8], |v| Unexpected::Bytes(v));
    scalar_visit!(visit_byte_buf, Vec<u8>, |v| Unexpected::Bytes(v));

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        match self.want {
            Want::Any => self.inner.visit_none(),
            _ => refuse(Unexpected::Option, &self),
        }
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.want {
            Want::Any | Want::Present => self.inner.visit_some(Strict(deserializer)),
            _ => refuse(Unexpected::Option, &self),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        match self.want {
            Want::Any => self.inner.visit_unit(),
            _ => refuse(Unexpected::Unit, &self),
        }
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        // serde_cbor (with its `tags` feature) also visits a tagged value this way: the contract
        // tags nothing, so only a newtype asked for gets through.
        match self.want {
            Want::Newtype => self.inner.visit_newtype_struct(Strict(deserializer)),
            _ => refuse(Unexpected::NewtypeStruct, &self),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        match self.want {
            Want::Any | Want::Seq => self.inner.visit_seq(StrictSeq(seq)),
            _ => refuse(Unexpected::Seq, &self),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match self.want {
            Want::Any | Want::Map => self.inner.visit_map(StrictMap(map)),
            _ => refuse(Unexpected::Map, &self),
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        match self.want {
            Want::Any | Want::Enum => self.inner.visit_enum(StrictEnum(data)),
            _ => refuse(Unexpected::Enum, &self),
        }
    }
}

/// One `deserialize_*` method: asks the inner deserializer the same, through a guard.
macro_rules! guarded {
    ($method:ident, $want:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Guard::new(visitor, Want::$want))
        }
    };
}

/// One `deserialize_*` method for a type whose visitor reads no nested values (an integer, a
/// bool, bytes): the inner deserializer's answer is already as strict as the contract.
macro_rules! passed_on {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method(visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    guarded!(deserialize_any, Any);
    guarded!(deserialize_f32, Float);
    guarded!(deserialize_f64, Float);
    guarded!(deserialize_char, Text);
    guarded!(deserialize_str, Text);
    guarded!(deserialize_string, Text);
    guarded!(deserialize_identifier, Text);
    guarded!(deserialize_option, Present);
    guarded!(deserialize_seq, Seq);
    guarded!(deserialize_map, Map);

    passed_on! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_newtype_struct(name, Guard::new(visitor, Want::Newtype))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple(len, Guard::new(visitor, Want::Seq))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Guard::new(visitor, Want::Seq))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_struct(name, fields, Guard::new(visitor, Want::Map))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_enum(name, variants, Guard::new(visitor, Want::Enum))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A seed whose value is read strictly.
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(deserializer))
    }
}

/// A map whose keys and values are read strictly: a struct's keys through
/// `deserialize_identifier`, so text only.
struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An array whose items are read strictly.
struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An enum whose tag is read strictly (text only) and whose content too.
struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(StrictSeed(seed))?;
        Ok((value, StrictVariant(variant)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    /// A unit variant must be a bare text string, never a one-entry map such as
    /// `{"refuse": null}`, which serde_cbor would read as the same value. A bare string has no
    /// content to read, so asking for one tells the two apart: the probe is only called when the
    /// variant came with content.
    fn unit_variant(self) -> Result<(), A::Error> {
        let had_content = Cell::new(false);
        match self.0.newtype_variant_seed(ContentProbe(&had_content)) {
            _ if had_content.get() => Err(A::Error::custom(
                "an enum value without fields is a text string, not a map",
            )),
            _ => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Guard::new(visitor, Want::Seq))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0
            .struct_variant(fields, Guard::new(visitor, Want::Map))
    }
}

/// Notes that a variant had content to read, and refuses it.
struct ContentProbe<'a>(&'a Cell<bool>);

impl<'de> DeserializeSeed<'de> for ContentProbe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        self.0.set(true);
        Err(D::Error::custom("unexpected content"))
    }
}
