//! `ValidQuery<T>`: query-string parameters with the failing parameter named in the error.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use serde::de::DeserializeOwned;
use service::FieldError;

use crate::error::ApiError;

pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = url::form_urlencoded::parse(req.query_string().as_bytes());
        let deserializer = serde_urlencoded::Deserializer::new(pairs);
        ready(
            serde_path_to_error::deserialize(deserializer)
                .map(ValidQuery)
                .map_err(|e| {
                    let field = e.path().to_string();
                    let field = if field == "." {
                        "query".to_owned()
                    } else {
                        field
                    };
                    ApiError::Validation(vec![FieldError::new(field, e.into_inner().to_string())])
                }),
        )
    }
}
