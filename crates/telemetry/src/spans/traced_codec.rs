//! How the fields of a [`TracedExchange`](super::TracedExchange) that serde cannot encode as
//! they are, or not compactly, are encoded: ids as byte strings, methods as text, error classes
//! as one-byte codes.

/// A fixed-size id as a byte string.
pub(crate) mod id_bytes {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    fn fixed<const N: usize, E: Error>(bytes: &[u8]) -> Result<[u8; N], E> {
        bytes
            .try_into()
            .map_err(|_| E::invalid_length(bytes.len(), &"an id of its fixed size"))
    }

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        id: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Bytes(id).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        fixed(<&[u8]>::deserialize(deserializer)?)
    }

    pub(crate) mod option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub(crate) fn serialize<S: Serializer, const N: usize>(
            id: &Option<[u8; N]>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            id.as_ref().map(|id| super::Bytes(id)).serialize(serializer)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            deserializer: D,
        ) -> Result<Option<[u8; N]>, D::Error> {
            Option::<&[u8]>::deserialize(deserializer)?
                .map(super::fixed)
                .transpose()
        }
    }
}

/// An `http::Method` as its text.
pub(crate) mod method_text {
    use http::Method;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(
        method: &Option<Method>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        method.as_ref().map(Method::as_str).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Method>, D::Error> {
        Option::<&str>::deserialize(deserializer)?
            .map(|text| Method::from_bytes(text.as_bytes()).map_err(D::Error::custom))
            .transpose()
    }
}

/// An [`ErrorClass`] as a one-byte code. Codes are never reused: a new class takes the next.
pub(crate) mod error_code {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    use crate::ErrorClass;

    pub(crate) fn code(class: ErrorClass) -> u8 {
        match class {
            ErrorClass::MalformedRequest => 1,
            ErrorClass::HeadersTooLarge => 2,
            ErrorClass::PayloadTooLarge => 3,
            ErrorClass::RouteNotFound => 4,
            ErrorClass::MethodNotAllowed => 5,
            ErrorClass::ClientClosed => 6,
            ErrorClass::UpstreamConnect => 7,
            ErrorClass::UpstreamReset => 8,
            ErrorClass::UpstreamTimeout => 9,
            ErrorClass::UpstreamRejected => 10,
            ErrorClass::WebSocketFrameTooLarge => 11,
            ErrorClass::WebSocketMessageTooLarge => 12,
            ErrorClass::WebSocketIdleTimeout => 13,
            ErrorClass::WebSocketLifetimeExceeded => 14,
            ErrorClass::RejectedByPhase => 15,
            ErrorClass::Internal => 16,
        }
    }

    pub(crate) fn class(code: u8) -> Option<ErrorClass> {
        Some(match code {
            1 => ErrorClass::MalformedRequest,
            2 => ErrorClass::HeadersTooLarge,
            3 => ErrorClass::PayloadTooLarge,
            4 => ErrorClass::RouteNotFound,
            5 => ErrorClass::MethodNotAllowed,
            6 => ErrorClass::ClientClosed,
            7 => ErrorClass::UpstreamConnect,
            8 => ErrorClass::UpstreamReset,
            9 => ErrorClass::UpstreamTimeout,
            10 => ErrorClass::UpstreamRejected,
            11 => ErrorClass::WebSocketFrameTooLarge,
            12 => ErrorClass::WebSocketMessageTooLarge,
            13 => ErrorClass::WebSocketIdleTimeout,
            14 => ErrorClass::WebSocketLifetimeExceeded,
            15 => ErrorClass::RejectedByPhase,
            16 => ErrorClass::Internal,
            _ => return None,
        })
    }

    pub(crate) fn serialize<S: Serializer>(
        class: &Option<ErrorClass>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        class.map(code).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<ErrorClass>, D::Error> {
        match Option::<u8>::deserialize(deserializer)? {
            None => Ok(None),
            Some(n) => class(n)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown error class code {n}"))),
        }
    }
}
